"""lock.py: `trialpipe lock NAME` and `trialpipe lock --verify NAME`."""

from __future__ import annotations

import json
from datetime import timedelta

import pyarrow.parquet as pq
import pytest

from pipeline.config import Paths
from pipeline.derive.lock import LockError, create_lock, verify_lock

from .factories import INGESTED, STUDY, at, enroll, events_table, report, write_warehouse


@pytest.fixture
def locked(paths: Paths) -> Paths:
    write_warehouse(paths.warehouse, [enroll(batch_id="b1"), report("r1", at(-1), leg=7, batch_id="b1"),
                                      report("r2", at(3), leg=5, batch_id="b1")])
    create_lock(paths, STUDY, "interim-1")
    return paths


def test_a_fresh_lock_verifies(locked: Paths) -> None:
    folder = locked.warehouse / "datalocks" / "interim-1"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["cutoff"] == INGESTED.isoformat()
    assert [f["path"] for f in manifest["files"]] == ["batches/b1.parquet", "events/site=S1/b1.parquet"]
    adam = sorted(["tables/adam/adam_metadata.csv"] + [f"tables/adam/{d}.{x}" for d in ("adsl", "adeff", "adtte")
                                                       for x in ("json", "xpt")])
    assert len(manifest["tables"]) == 2 * 9 + len(adam)  # the derived tables as CSV and Parquet; the ADaM files
    assert sorted(t["path"] for t in manifest["tables"] if t["path"].startswith("tables/adam/")) == adam
    assert verify_lock(locked, STUDY, "interim-1") == []


def test_later_ingestions_do_not_disturb_a_lock(locked: Paths) -> None:
    write_warehouse(locked.warehouse, [report("r3", at(9), leg=2, batch_id="b2",
                                              ingested=INGESTED + timedelta(days=2))])
    assert verify_lock(locked, STUDY, "interim-1") == []


def test_an_existing_lock_name_is_refused(locked: Paths) -> None:
    with pytest.raises(LockError, match="already exists"):
        create_lock(locked, STUDY, "interim-1")


def test_a_changed_event_file_is_found(locked: Paths) -> None:
    path = locked.warehouse / "events" / "site=S1" / "b1.parquet"
    table = pq.read_table(path)
    pq.write_table(table.set_column(table.schema.get_field_index("leg_pain_nrs"), "leg_pain_nrs",
                                    events_table([enroll(), report("r1", at(-1), leg=9),
                                                  report("r2", at(3), leg=5)])["leg_pain_nrs"]), path)
    problems = verify_lock(locked, STUDY, "interim-1")
    assert "event-log file events/site=S1/b1.parquet changed (SHA-256 differs)" in problems
    assert any("does not reproduce tables/trajectory.csv" in p for p in problems)


def test_a_file_slipped_in_before_the_cutoff_is_found(locked: Paths) -> None:
    write_warehouse(locked.warehouse, [report("r9", at(5), leg=1, batch_id="b0", ingested=INGESTED)])
    problems = verify_lock(locked, STUDY, "interim-1")
    assert "events/site=S1/b0.parquet is not in the lock but holds rows ingested by its cutoff" in problems


def test_a_changed_locked_table_or_manifest_is_found(locked: Paths) -> None:
    folder = locked.warehouse / "datalocks" / "interim-1"
    with open(folder / "tables" / "patient_week.csv", "a") as fh:
        fh.write("S1,P1,surgery,9,recovered,,,0\n")
    manifest = folder / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"lock": "interim-1"', '"lock": "interim-2"'))
    problems = verify_lock(locked, STUDY, "interim-1")
    assert "manifest.json does not match manifest.json.sha256: the manifest was changed" in problems
    assert "locked table tables/patient_week.csv changed (SHA-256 differs)" in problems


def test_unknown_or_bad_lock_names(locked: Paths) -> None:
    assert verify_lock(locked, STUDY, "nope")[0].startswith("data lock 'nope' not found")
    assert "must be" in verify_lock(locked, STUDY, "../x")[0]
    with pytest.raises(LockError):
        create_lock(locked, STUDY, "../escape")


def test_a_changed_adam_file_is_found_and_re_deriving_reproduces_the_others(locked: Paths) -> None:
    # issue 13: the ADaM datasets are locked like the tables (their creation instant is the cutoff)
    folder = locked.warehouse / "datalocks" / "interim-1" / "tables" / "adam"
    data = bytearray((folder / "adtte.xpt").read_bytes())
    data[-1] ^= 1
    (folder / "adtte.xpt").write_bytes(bytes(data))
    # re-deriving as of the cutoff reproduces every file of the manifest, the ADaM ones byte for byte
    assert verify_lock(locked, STUDY, "interim-1") == ["locked table tables/adam/adtte.xpt changed (SHA-256 differs)"]
