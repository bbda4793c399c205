"""incremental.py: a derivation after new batches re-derives only the patients they touched, and
the law that keeps it honest: incremental equals a full rebuild, table for table, for any sequence
of deliveries (hypothesis), also when a crash cuts a derivation short."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import Paths
from pipeline.derive.api import derive, derive_in_memory
from pipeline.derive.build import TABLES
from pipeline.store.warehouse import dataset_sql

from .factories import INGESTED, STUDY, at, enroll, ev, report, write_warehouse
from .test_properties import observation

CRASH_POINTS = ("derive_start", "derive_writing", "derive_before_swap", "derive_after_swap")


def tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[dict[str, Any]]]:
    return {t: sorted(con.sql(f"select * from {t}").to_arrow_table().to_pylist(), key=repr) for t in TABLES}


def stored_tables(paths: Paths) -> dict[str, list[dict[str, Any]]]:
    with duckdb.connect(str(paths.db_path), read_only=True) as con:
        return tables(con)


def rebuilt_tables(paths: Paths) -> dict[str, list[dict[str, Any]]]:
    con = derive_in_memory(paths, STUDY)
    try:
        return tables(con)
    finally:
        con.close()


def alert_keys(paths: Paths) -> set[tuple[str, str, str]]:
    sql = f"select patient_id, event_id, flag from ({dataset_sql(paths, 'alerts')}) where source = 'derive'"
    return set(duckdb.connect().sql(sql).fetchall())


def derived_only_keys(paths: Paths) -> set[tuple[str, str, str]]:
    con = derive_in_memory(paths, STUDY)
    try:
        return set(con.sql("select patient_id, event_id, flag from derive_state.derived_red_flags").fetchall())
    finally:
        con.close()


@st.composite
def deliveries(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Batches of one site each, delivered one after another (some in the same ISO week): new
    patients, diaries, and corrections, retractions and withdrawals of patients delivered long ago."""
    patients = [{"patient_id": f"P{p}", "site_id": draw(st.sampled_from(["S1", "S2"]))}
                for p in range(draw(st.integers(1, 4)))]
    delivered: dict[str, list[dict[str, Any]]] = {p["patient_id"]: [] for p in patients}
    batches: list[list[dict[str, Any]]] = []
    day = 0
    for k in range(draw(st.integers(2, 5))):
        day += draw(st.sampled_from([1, 3, 8]))  # 1 and 3: often the same ISO week as the last delivery
        site = draw(st.sampled_from(["S1", "S2"]))
        common = {"batch_id": f"d{k}", "ingested": INGESTED + timedelta(days=day)}
        batch: list[dict[str, Any]] = []
        for patient in (p for p in patients if p["site_id"] == site):
            pid, past = patient["patient_id"], delivered[patient["patient_id"]]
            if not past:
                batch.append(enroll(pid, site_id=site, arm=draw(st.sampled_from(["surgery", "conservative"])),
                                    side=draw(st.sampled_from(["left", "bilateral"])), **common))
            for i in range(draw(st.integers(0, 3))):
                batch.append({**draw(observation(f"{pid}-{k}-{i}", patient)), **common_fields(common),
                              "warnings": draw(st.sampled_from([[], [], ["late_entry"]]))})
            edits = [e for e in past if e["event_type"] not in ("correction", "retraction", "withdrawal")]
            if edits and draw(st.booleans()):
                target = draw(st.sampled_from(edits))
                payload = {c: v for c, v in target.items()
                           if c not in ("event_id", "event_type", "recorded_at", "occurred_at", "site_id",
                                        "patient_id", "batch_id", "ingested_at", "warnings", "schema_version")}
                if target["event_type"] == "symptom_report":
                    payload["leg_pain_nrs"] = draw(st.integers(0, 10))
                when = target["occurred_at"] + timedelta(hours=draw(st.integers(-30, 30)))
                batch.append(ev(f"{pid}-{k}-c", "correction", when, pid, site, recorded=at(60 + k),
                                target_event_id=target["event_id"], **payload, **common))
            if edits and draw(st.booleans()):
                target = draw(st.sampled_from(edits))
                batch.append(ev(f"{pid}-{k}-x", "retraction", at(61 + k), pid, site,
                                target_event_id=target["event_id"], **common))
            if past and draw(st.integers(0, 4)) == 0:
                batch.append(ev(f"{pid}-{k}-w", "withdrawal", at(draw(st.integers(1, 40))), pid, site, **common))
        for e in batch:
            delivered[e["patient_id"]].append(e)
        batches.append(batch or [ev(f"d{k}-none", "symptom_report", at(1), "P-unenrolled", site,
                                     leg_pain_nrs=1, **common)])
    return batches


def quarantined(batch_id: str, site_id: str, rows: int) -> list[dict[str, Any]]:
    return [{"batch_id": batch_id, "site_id": site_id, "source_file": f"{batch_id}.csv", "source_row": i,
             "event_id": f"{batch_id}-q{i}", "rules": ["bad_enum"], "messages": ["bad"], "raw": "",
             "ingested_at": INGESTED} for i in range(rows)]


def common_fields(common: dict[str, Any]) -> dict[str, Any]:
    return {"batch_id": common["batch_id"], "ingested_at": common["ingested"]}


@pytest.mark.slow
@settings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(batches=deliveries(), rejected=st.lists(st.integers(0, 2), min_size=5, max_size=5))
def test_incremental_derivation_equals_a_full_rebuild_after_every_delivery(
        batches: list[list[dict[str, Any]]], rejected: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = Paths(Path(tmp) / "study.toml", Path(tmp) / "landing", Path(tmp) / "warehouse")
        for i, batch in enumerate(batches):
            # some rows of the file quarantined (rule counts of the batch and its site-week)
            write_warehouse(paths.warehouse, batch, quarantined(batch[0]["batch_id"], batch[0]["site_id"], rejected[i]))
            result = derive(paths, STUDY)
            assert result.scope.startswith("incremental" if i else "full"), result.scope
            assert stored_tables(paths) == rebuilt_tables(paths), f"after delivery {i}"
            assert derived_only_keys(paths) <= alert_keys(paths)


def test_a_derivation_after_new_batches_re_derives_only_their_patients(paths: Paths) -> None:
    write_warehouse(paths.warehouse, [enroll("P1", batch_id="b1"), enroll("P2", batch_id="b1"),
                                      report("r1", at(2), patient_id="P1", batch_id="b1"),
                                      report("r2", at(2), patient_id="P2", batch_id="b1")])
    assert derive(paths, STUDY).scope.startswith("full")
    later = INGESTED + timedelta(days=30)
    write_warehouse(paths.warehouse, [ev("x1", "retraction", at(40), "P1", target_event_id="r1", batch_id="b2",
                                         ingested=later)])
    assert derive(paths, STUDY).scope == "incremental: 1 new batches, 1 patients re-derived"
    assert stored_tables(paths) == rebuilt_tables(paths)
    assert derive(paths, STUDY).scope == "incremental: 0 new batches, 0 patients re-derived"


def test_as_of_tables_are_followed_by_a_full_derivation(paths: Paths) -> None:
    write_warehouse(paths.warehouse, [enroll("P1", batch_id="b1"), report("r1", at(2), batch_id="b1")])
    derive(paths, STUDY)
    write_warehouse(paths.warehouse, [report("r2", at(9), batch_id="b2", ingested=INGESTED + timedelta(days=9))])
    derive(paths, STUDY, as_of=INGESTED + timedelta(days=1))
    assert derive(paths, STUDY).scope == "full derivation: tables derived as of a past instant"
    assert stored_tables(paths) == rebuilt_tables(paths)


ALERTING = [enroll("P1", side="left", batch_id="b1"), report("r1", at(2), batch_id="b1")]
LATER = [report("r2", at(4), bilateral_symptoms=True, batch_id="b2", ingested=INGESTED + timedelta(days=3)),
         enroll("P2", batch_id="b2", ingested=INGESTED + timedelta(days=3))]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_derivation_killed_anywhere_leaves_old_or_new_tables_and_the_next_one_is_right(
        paths: Paths, point: str) -> None:
    write_warehouse(paths.warehouse, ALERTING)
    derive(paths, STUDY)
    before = stored_tables(paths)
    write_warehouse(paths.warehouse, LATER)
    code = ("import sys; from pathlib import Path; from pipeline.config import Paths; "
            "from pipeline.derive.api import derive; from tests.derive.factories import STUDY; "
            "w = Path(sys.argv[1]); derive(Paths(w / 's.toml', w / 'l', w), STUDY)")
    killed = subprocess.run([sys.executable, "-c", code, str(paths.warehouse)], capture_output=True,
                            env={**os.environ, "TRIALPIPE_CRASH_AT": point}, cwd=Path(__file__).parents[2])
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert stored_tables(paths) in (before, rebuilt_tables(paths))
    assert alert_keys(paths) == set()  # alerts are appended after the tables are in place
    derive(paths, STUDY)
    assert stored_tables(paths) == rebuilt_tables(paths)
    assert alert_keys(paths) == {("P1", "r2", "BILATERAL")}


def test_a_batch_in_the_site_week_of_an_earlier_one_recounts_that_week_not_the_earlier_batch(
        paths: Paths) -> None:
    monday = INGESTED - timedelta(days=INGESTED.weekday())
    write_warehouse(paths.warehouse, [enroll("P1", batch_id="b1", ingested=monday),
                                      report("r1", at(2), batch_id="b1", ingested=monday, warnings=["late_entry"])])
    derive(paths, STUDY)
    write_warehouse(paths.warehouse, [report("r2", at(3), batch_id="b2", ingested=monday + timedelta(days=2),
                                             warnings=["late_entry"])])
    assert derive(paths, STUDY).scope.startswith("incremental")
    assert stored_tables(paths) == rebuilt_tables(paths)
    weeks = stored_tables(paths)["dq_site_week"]
    assert [(w["late_entries"], w["warnings_by_rule"]) for w in weeks] == [(2, '{"late_entry":2}')]
