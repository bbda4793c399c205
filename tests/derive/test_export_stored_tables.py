"""`trialpipe export` writes events, quarantine and alerts too (interface.md, Warehouse), cut at --as-of."""

from __future__ import annotations

import csv
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.derive.api import export
from pipeline.derive.build import TABLES
from tests.ingest.helpers import Deployment, enrollment, make_deployment, symptom

STORED = ("events", "quarantine", "alerts")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def dep(tmp_path: Path) -> Deployment:
    """Two ingest runs: the first with a red flag and a rejected row, the second one later."""
    dep = make_deployment(tmp_path / "study")
    dep.deliver("NL01", "a.csv", [enrollment("E9"), symptom("E1", patient="P1", bladder_dysfunction=True),
                                  symptom("=E3", leg_pain_nrs=14)])
    dep.deliver("NL02", "a.csv", [enrollment("E5", site="NL02", patient="P2")])
    dep.ingest()
    return dep


def later(dep: Deployment) -> datetime:
    """The instant between the fixture's ingest run and a second one (E7, another rejected row and alert)."""
    cutoff = datetime.now(UTC)
    dep.deliver("NL01", "b.csv", [symptom("E7", occurred="2026-01-12T09:00:00Z", bowel_dysfunction=True),
                                  symptom("E8", occurred="2026-01-12T09:00:00Z", leg_pain_nrs=-3)])
    assert len(dep.ingest().batches) == 1
    return cutoff


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_events_quarantine_and_alerts_after_the_derived_tables(dep: Deployment, tmp_path: Path,
                                                                             fmt: str) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["export", "--format", fmt, "--out", str(out), "--study", str(dep.paths.study),
                                       "--landing", str(dep.paths.landing), "--warehouse", str(dep.paths.warehouse)])
    assert result.exit_code == 0, result.stderr
    names = [*TABLES, *STORED]
    assert result.stdout.splitlines() == [str(out / f"{t}.{fmt}") for t in names]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.{fmt}" for t in names)


def test_exported_events_quarantine_and_alerts_are_sorted_by_their_keys(dep: Deployment, tmp_path: Path) -> None:
    export(dep.paths, dep.study, "csv", tmp_path / "out")
    events = read_csv(tmp_path / "out" / "events.csv")
    assert [(r["site_id"], r["event_id"]) for r in events] == [("NL01", "E1"), ("NL01", "E9"), ("NL02", "E5")]
    assert {"batch_id", "source_sha256", "source_row", "ingested_at"} <= set(events[0])
    quarantine = read_csv(tmp_path / "out" / "quarantine.csv")
    assert [(r["site_id"], r["source_row"]) for r in quarantine] == [("NL01", "3")]
    alerts = read_csv(tmp_path / "out" / "alerts.csv")
    assert [(r["event_id"], r["flag"], r["source"]) for r in alerts] == [("E1", "BLADDER", "ingest")]


def test_exported_csv_neutralises_formula_like_text_of_stored_tables_but_parquet_keeps_it(
        dep: Deployment, tmp_path: Path) -> None:
    export(dep.paths, dep.study, "csv", tmp_path / "csv")
    export(dep.paths, dep.study, "parquet", tmp_path / "pq")
    (row,) = read_csv(tmp_path / "csv" / "quarantine.csv")
    assert row["event_id"] == "'=E3"
    assert pq.read_table(tmp_path / "pq" / "quarantine.parquet").column("event_id").to_pylist() == ["=E3"]


def test_export_as_of_cuts_events_and_quarantine_by_ingestion_and_alerts_by_raising(dep: Deployment,
                                                                                   tmp_path: Path) -> None:
    cutoff = later(dep)
    export(dep.paths, dep.study, "csv", tmp_path / "now")
    export(dep.paths, dep.study, "csv", tmp_path / "then", as_of=cutoff)
    now_events = {r["event_id"] for r in read_csv(tmp_path / "now" / "events.csv")}
    then_events = {r["event_id"] for r in read_csv(tmp_path / "then" / "events.csv")}
    assert now_events - then_events == {"E7"}
    assert {r["event_id"] for r in read_csv(tmp_path / "now" / "quarantine.csv")} == {"'=E3", "E8"}
    assert {r["event_id"] for r in read_csv(tmp_path / "then" / "quarantine.csv")} == {"'=E3"}
    assert [r["alert_id"] for r in read_csv(tmp_path / "now" / "alerts.csv")] == sorted(
        r["alert_id"] for r in read_csv(tmp_path / "now" / "alerts.csv"))
    now_alerts = {r["event_id"] for r in read_csv(tmp_path / "now" / "alerts.csv")}
    then_alerts = {r["event_id"] for r in read_csv(tmp_path / "then" / "alerts.csv")}
    assert now_alerts - then_alerts == {"E7"}
    assert all(datetime.fromisoformat(r["raised_at"]) <= cutoff for r in read_csv(tmp_path / "then" / "alerts.csv"))


def test_exports_of_stored_tables_are_byte_for_byte_reproducible(dep: Deployment, tmp_path: Path) -> None:
    later(dep)

    def digests(out: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())
                if p.name.startswith(STORED)}

    for fmt in ("csv", "parquet"):
        export(dep.paths, dep.study, fmt, tmp_path / "a")
        export(dep.paths, dep.study, fmt, tmp_path / "b")
    assert len(digests(tmp_path / "a")) == 6
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
