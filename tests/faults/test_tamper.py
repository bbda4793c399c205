"""Tampering with the committed log is evident: `trialpipe verify` names the batch and the file."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.store import chain
from pipeline.store.audit import verify
from pipeline.store.warehouse import BATCH_SCHEMA
from tests.faults.helpers import assert_verifies, cli
from tests.ingest.helpers import Deployment, symptom


def _records(dep: Deployment) -> list[tuple[int, str]]:
    """(chain_seq, batch_id) of every ledger record, in commit order."""
    rows = dep.q("SELECT chain_seq, batch_id FROM batches ORDER BY chain_seq")
    return [(int(s), str(b)) for s, b in rows]


def _events_file(dep: Deployment, batch_id: str) -> str:
    (path,) = dep.paths.warehouse.glob(f"events/site=*/{batch_id}.parquet")
    return path.relative_to(dep.paths.warehouse).as_posix()


def test_an_untouched_log_verifies_and_derive_runs(ingested: Deployment) -> None:
    result = verify(ingested.paths)
    assert result.ok, result.problems
    assert result.links == 5 and result.files > 10
    assert_verifies(ingested)


def test_bytes_flipped_in_an_events_file_are_named_and_derive_refuses(ingested: Deployment) -> None:
    _, batch = _records(ingested)[0]
    rel = _events_file(ingested, batch)
    path = ingested.paths.warehouse / rel
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    run = cli(ingested, "verify")
    assert run.returncode == 1
    assert run.stdout.splitlines() == [f"batch {batch}: file {rel} changed (SHA-256 differs)"]
    line = f"batch {batch}: file {rel} changed (SHA-256 differs)"
    assert run.stderr.strip() == f"trialpipe: the log does not verify: {line}"

    refused = cli(ingested, "derive")
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1
    assert refused.stderr.startswith(f"trialpipe: derive refused: the log does not verify: batch {batch}: file {rel}")
    assert not ingested.paths.db_path.exists() or "trajectory" not in refused.stdout


def test_a_missing_file_and_an_added_file_are_named(ingested: Deployment) -> None:
    (_, first), (_, second) = _records(ingested)[:2]
    quarantine = next(ingested.paths.warehouse.glob(f"quarantine/site=*/{first}.parquet"))
    quarantine.unlink()
    added = ingested.paths.warehouse / "events" / "site=NL02" / f"{second}.parquet"
    assert not added.exists()
    shutil.copy(ingested.paths.warehouse / _events_file(ingested, second), added)

    problems = verify(ingested.paths).problems
    assert f"batch {first}: file {quarantine.relative_to(ingested.paths.warehouse).as_posix()} missing" in problems
    assert (f"batch {second}: file events/site=NL02/{second}.parquet added (not among the files its record chained)"
            in problems)
    assert len(problems) == 2


def test_a_batch_erased_with_its_ledger_record_leaves_a_gap(ingested: Deployment) -> None:
    records = _records(ingested)
    seq, batch = records[2]
    for path in ingested.paths.warehouse.glob(f"**/{batch}*"):
        path.unlink()
    problems = verify(ingested.paths).problems
    assert problems == [f"ledger record #{seq} removed (after batch {records[1][1]}) (before batch {records[3][1]}): "
                        "the chain has a gap"]


def test_the_last_batch_erased_is_caught_by_the_head(ingested: Deployment) -> None:
    seq, batch = _records(ingested)[-1]
    for path in ingested.paths.warehouse.glob(f"**/{batch}*"):
        path.unlink()
    problems = verify(ingested.paths).problems
    assert len(problems) == 1 and problems[0].startswith(f"ledger record #{seq} removed")


def _rewrite_record(dep: Deployment, batch: str, **changes: object) -> None:
    path = dep.paths.batches_dir / f"{batch}.parquet"
    row = {**pq.read_table(path).to_pylist()[0], **changes}
    pq.write_table(pa.Table.from_pylist([row], schema=BATCH_SCHEMA), path)


def test_ledger_records_reordered_are_named(ingested: Deployment) -> None:
    records = _records(ingested)
    (s2, b2), (s3, b3) = records[1], records[2]
    _rewrite_record(ingested, b2, chain_seq=s3)
    _rewrite_record(ingested, b3, chain_seq=s2)
    problems = verify(ingested.paths).problems
    assert any(p.startswith(f"batch {b2}: ledger records reordered: #{s3} follows #{s2 - 1}") for p in problems)
    assert all("batch " in p for p in problems)


def test_a_ledger_record_edited_in_place_is_named(ingested: Deployment) -> None:
    _, batch = _records(ingested)[1]
    _rewrite_record(ingested, batch, accepted=0)
    problems = verify(ingested.paths).problems
    assert problems == [f"batch {batch}: ledger record batches/{batch}.parquet changed (its SHA-256 differs from "
                        f"the one chained by #3, batch {_records(ingested)[2][1]})"]


def test_leftovers_of_an_uncommitted_batch_are_passed_over(ingested: Deployment) -> None:
    """A batch being committed has its files before its record: not a problem, and not seen by readers."""
    src = ingested.paths.warehouse / _events_file(ingested, _records(ingested)[0][1])
    shutil.copy(src, src.with_name("20990101T000000000000-aaaaaaaaaaaa-bbbbbb.parquet"))
    result = verify(ingested.paths)
    assert result.ok and result.leftovers == 1


def _make_prechain(dep: Deployment) -> None:
    """The warehouse as an earlier trialpipe wrote it: ledger records without chain fields, no audit/."""
    old = pa.schema([f for f in BATCH_SCHEMA if f.name not in ("chain_seq", "chain_prev", "files")])
    for path in dep.paths.batches_dir.glob("*.parquet"):
        table = pq.read_table(path)
        pq.write_table(table.select(old.names).cast(old), path)
    shutil.rmtree(chain.audit_dir(dep.paths))


def test_a_prechain_warehouse_must_be_adopted_once_explicitly(ingested: Deployment) -> None:
    _make_prechain(ingested)
    run = cli(ingested, "verify")
    assert run.returncode == 1
    assert "written before the audit chain: 5 ledger record(s) are not chained" in run.stdout
    assert "trialpipe verify --adopt" in run.stdout
    assert cli(ingested, "derive").returncode == 1
    assert not chain.audit_dir(ingested.paths).exists(), "nothing is adopted silently"

    adopted = cli(ingested, "verify", "--adopt")
    assert adopted.returncode == 0, adopted.stderr
    assert adopted.stdout.startswith("adopted the pre-chain log: chain head #1 adopt-")
    assert_verifies(ingested)
    again = cli(ingested, "verify", "--adopt")
    assert again.returncode == 1 and "already chained" in again.stderr

    ingested.deliver("NL01", "later.csv", [symptom("LATE1", occurred="2026-03-02T09:00:00Z")])
    ingested.ingest()
    assert verify(ingested.paths).ok and verify(ingested.paths).links == 2


def test_a_prechain_warehouse_ingests_on_and_still_asks_for_adoption(ingested: Deployment) -> None:
    """Safety data keeps flowing into an old warehouse; the new batches are chained, the old ones wait."""
    _make_prechain(ingested)
    ingested.deliver("NL01", "later.csv", [symptom("LATE1", occurred="2026-03-02T09:00:00Z")])
    ingested.ingest()
    problems = verify(ingested.paths).problems
    assert len(problems) == 1 and "verify --adopt" in problems[0]
    assert cli(ingested, "verify", "--adopt").returncode == 0
    assert verify(ingested.paths).ok


def test_accept_unverified_goes_on_and_is_recorded(ingested: Deployment) -> None:
    _make_prechain(ingested)
    run = cli(ingested, "derive", "--accept-unverified")
    assert run.returncode == 0, run.stderr
    assert "trialpipe: warning: derive runs on a log that does not verify" in run.stderr
    (record,) = (chain.audit_dir(ingested.paths) / "unverified").glob("*-derive-*.json")
    kept = json.loads(record.read_text())
    assert kept["command"] == "derive" and "verify --adopt" in kept["problems"][0]


def test_a_data_lock_names_the_chain_head_it_froze(ingested: Deployment) -> None:
    run = cli(ingested, "lock", "L1")
    assert run.returncode == 0, run.stderr
    manifest = json.loads((ingested.paths.warehouse / "datalocks" / "L1" / "manifest.json").read_text())
    head = chain.read_head(ingested.paths)
    assert head is not None
    assert manifest["chain_head"] == {"seq": head.seq, "id": head.id, "record": head.record, "sha256": head.sha256}


def test_report_export_and_lock_refuse_a_log_that_does_not_verify(ingested: Deployment) -> None:
    _, batch = _records(ingested)[0]
    next(ingested.paths.warehouse.glob(f"quarantine/site=*/{batch}.parquet")).unlink()
    out = ingested.root / "export"
    for args in (("report",), ("export", "--format", "csv", "--out", str(out)), ("lock", "L9")):
        refused = cli(ingested, *args)
        assert refused.returncode == 1, args
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith(f"trialpipe: {args[0]} refused: the log does not verify: batch {batch}: file ")
    assert not out.exists() and not (ingested.paths.warehouse / "datalocks" / "L9").exists()
    assert not ingested.paths.reports_dir.exists()
