"""Commit a batch atomically; recover from a crash before anything else runs.

A batch's data files (events, quarantine, alerts, validation results) are
written first, each atomically; the ledger record `batches/<batch_id>.parquet`
is written last and is the commit point. Readers only see data of batches with
a ledger record, so a crash at any moment leaves either the whole batch or
nothing, and the file is simply ingested again on the next run. `recover`
removes the leftovers of uncommitted batches (never a committed file).

The record also links the batch into the hash chain (pipeline.store.chain): the
SHA-256 of every file it committed and of the record before it. The head of the
chain follows the record at once; `recover` moves it on after a crash between.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import Paths
from pipeline.store import chain
from pipeline.store.crash import crashpoint
from pipeline.store.files import atomic_write_bytes, atomic_write_parquet, fsync_dir
from pipeline.store.warehouse import BATCH_SCHEMA, committed_batch_ids

SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def safe_component(name: str) -> str:
    """A landing folder name usable in a warehouse path (names from outside are never trusted)."""
    return name if SAFE.match(name) else "_unregistered"


@dataclass
class Batch:
    batch_id: str
    site_folder: str
    ledger: dict[str, Any]
    events_file: Path | None = None  # accepted events already streamed to a temp file beside their final place
    quarantine: pa.Table | None = None
    alerts: pa.Table | None = None
    validations: dict[str, dict[str, Any]] = field(default_factory=dict)


def data_files(paths: Paths, batch: Batch) -> dict[str, Path]:
    site = safe_component(batch.site_folder)
    return {
        "events": paths.events_dir / f"site={site}" / f"{batch.batch_id}.parquet",
        "quarantine": paths.quarantine_dir / f"site={site}" / f"{batch.batch_id}.parquet",
        "alerts": paths.alerts_dir / f"{batch.batch_id}.parquet",
    }


def commit(paths: Paths, batch: Batch) -> None:
    """Write the batch; it becomes visible when its ledger record lands (last)."""
    targets = data_files(paths, batch)
    written: list[Path] = []
    crashpoint("commit_start")
    if batch.events_file is not None:
        os.replace(batch.events_file, targets["events"])
        fsync_dir(targets["events"].parent)
        written.append(targets["events"])
        crashpoint("after_events")
    for kind in ("quarantine", "alerts"):
        table = getattr(batch, kind)
        if table is not None and table.num_rows:
            atomic_write_parquet(table, targets[kind])
            written.append(targets[kind])
            crashpoint(f"after_{kind}")
    for suite, result in batch.validations.items():
        out = paths.validations_dir / safe_component(batch.site_folder) / f"{batch.batch_id}.{suite}.json"
        atomic_write_bytes(json.dumps(result, default=str).encode(), out)
        written.append(out)
    crashpoint("before_ledger")
    record = paths.batches_dir / f"{batch.batch_id}.parquet"
    seq, prev, pending = chain.next_link(paths, batch.batch_id)
    links = {"chain_seq": seq, "chain_prev": prev, "files": [chain.file_entry(paths, p) for p in written]}
    ledger = pa.Table.from_pylist([{**batch.ledger, **links}], schema=BATCH_SCHEMA)
    atomic_write_parquet(ledger, record)
    crashpoint("after_ledger")
    chain.advance(paths, seq, batch.batch_id, record, pending)


def recover(paths: Paths) -> list[Path]:
    """Remove files of batches that never committed and half-written temp files. Caller holds the writer lock."""
    committed = committed_batch_ids(paths)
    removed: list[Path] = []
    candidates = [
        *paths.events_dir.glob("site=*/*.parquet"),
        *paths.quarantine_dir.glob("site=*/*.parquet"),
        *(p for p in paths.alerts_dir.glob("*.parquet") if not p.name.startswith("derive-")),
    ]
    for p in candidates:
        if p.stem not in committed:
            p.unlink()
            removed.append(p)
    for p in paths.validations_dir.glob("*/*.json"):
        if p.name.split(".", 1)[0] not in committed:
            p.unlink()
            removed.append(p)
    for p in chain.unlinked_derive_files(paths):  # an alert append that crashed before its link
        p.unlink()
        removed.append(p)
    for d in (paths.events_dir, paths.quarantine_dir, paths.alerts_dir, paths.batches_dir, paths.validations_dir,
              chain.audit_dir(paths)):
        for p in d.glob("**/.*.tmp"):
            p.unlink()
            removed.append(p)
    chain.catch_up(paths)  # a crash between a record and the head left the head one link behind
    return removed


def read_ledger_rows(paths: Paths) -> list[dict[str, Any]]:
    if not paths.batches_dir.exists():
        return []
    return [row for p in sorted(paths.batches_dir.glob("*.parquet")) for row in pq.read_table(p).to_pylist()]
