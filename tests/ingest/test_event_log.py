"""Event-sourcing guarantees: append-only, idempotent, lineage, conservation, formats."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.ingest.helpers import Deployment, enrollment, event, symptom


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.parquet"))}


def test_ingest_never_rewrites_or_deletes_an_event_file(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2")])
    dep.ingest()
    before = _snapshot(dep.paths.events_dir)
    dep.deliver("NL01", "b.csv", [symptom("E3", occurred="2026-01-06T09:00:00Z")])
    dep.ingest()
    after = _snapshot(dep.paths.events_dir)
    assert all(after.get(k) == v for k, v in before.items())
    assert len(after) == len(before) + 1


def test_rerun_on_unchanged_landing_zone_changes_nothing(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2"), symptom("E3", leg_pain_nrs=11)])
    dep.ingest()
    before = _snapshot(dep.paths.warehouse)
    summary = dep.ingest()
    assert summary.batches == [] and summary.alerts == []
    assert _snapshot(dep.paths.warehouse) == before


def test_same_bytes_under_another_name_are_ingested_once(dep: Deployment) -> None:
    path = dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2")])
    dep.ingest()
    dep.deliver("NL01", "copy-of-a.csv", path.read_bytes())
    summary = dep.ingest()
    assert [b["status"] for b in summary.batches] == ["file_duplicate"]
    assert dep.q("SELECT count(*) FROM events") == [(2,)]


def test_every_event_carries_its_lineage(dep: Deployment) -> None:
    path = dep.deliver("NL01", "a.jsonl", [enrollment("E1"), symptom("E2")])
    dep.ingest()
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    rows = dep.q("SELECT event_id, batch_id, source_sha256, source_row, ingested_at FROM events ORDER BY event_id")
    assert [(r[0], r[2], r[3]) for r in rows] == [("E1", sha, 1), ("E2", sha, 2)]
    assert all(r[1] and r[4] is not None for r in rows)
    (batch,) = dep.q("SELECT batch_id FROM batches")
    assert rows[0][1] == batch[0]


def test_conservation_received_equals_accepted_rejected_duplicates(dep: Deployment) -> None:
    rows = [enrollment("E1"), symptom("E2"), symptom("E2"), symptom("E3", leg_pain_nrs=-1), symptom("E4")]
    dep.deliver("NL01", "a.csv", rows)
    dep.ingest()
    (b,) = dep.q("SELECT received, accepted, rejected, duplicates FROM batches")
    assert b == (5, 3, 1, 1)
    assert dep.q("SELECT count(*) FROM events") == [(3,)]
    assert dep.q("SELECT count(*) FROM quarantine") == [(1,)]


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "jsonl", "jsonl.gz", "parquet"])
def test_every_format_gives_the_same_events(dep: Deployment, fmt: str) -> None:
    rows = [enrollment("E1"), symptom("E2", muscle_spasm=True, comment="ok, better", paresthesia="tingling",
                                     paresthesia_extent="knee", occurred="2026-01-05T10:00:00+01:00")]
    dep.deliver("NL01", f"a.{fmt}", rows)
    dep.ingest()
    got = dep.q("SELECT event_id, occurred_at, leg_pain_nrs, muscle_spasm, comment, paresthesia_extent, age_years "
                "FROM events ORDER BY event_id")
    assert [(g[0], g[1].isoformat(), *g[2:]) for g in got] == [
        ("E1", "2026-01-01T09:00:00+00:00", None, None, None, None, 44),
        ("E2", "2026-01-05T09:00:00+00:00", 5, True, "ok, better", "knee", None),
    ]


def test_files_being_written_wait_until_renamed(dep: Deployment) -> None:
    done = dep.deliver("NL01", "a.csv", [enrollment("E1")])
    for name in ("a.csv.part", ".b.csv", "c.csv.tmp"):
        dep.deliver("NL01", name, done.read_bytes())
    done.unlink()
    assert dep.ingest().batches == []
    (dep.paths.landing / "NL01" / "a.csv.part").rename(dep.paths.landing / "NL01" / "a.csv")
    assert [b["source_file"] for b in dep.ingest().batches] == ["NL01/a.csv"]


def test_symlinks_in_the_landing_zone_are_never_followed(dep: Deployment, tmp_path: Path) -> None:
    secret = tmp_path / "outside.csv"
    secret.write_text("event_id\n")
    (dep.paths.landing / "NL01").mkdir(parents=True)
    (dep.paths.landing / "NL01" / "link.csv").symlink_to(secret)
    (dep.paths.landing / "NL02").symlink_to(tmp_path)
    assert dep.ingest().batches == []


def test_a_file_validated_in_several_chunks_keeps_every_verdict(dep: Deployment,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (benchmark): chunks that ran different expectations must still merge into one result."""
    import pipeline.ingest.read as read
    import pipeline.ingest.stage as stage

    monkeypatch.setattr(read, "CHUNK_ROWS", 2)
    monkeypatch.setattr(stage, "VALIDATE_ROWS", 2)
    rows = [enrollment("E1"), symptom("E2"), symptom("E3", comment="x" * 501),
            event("E4", "treatment", modality="nsaid"), symptom("E5", leg_pain_nrs=11)]
    dep.deliver("NL01", "a.csv", rows)
    (b,) = dep.ingest().batches
    assert (b["accepted"], b["rejected"]) == (3, 2)
    assert dep.q("SELECT event_id, rules FROM quarantine ORDER BY event_id") == [
        ("E3", ["comment_too_long"]), ("E5", ["out_of_range"])]
