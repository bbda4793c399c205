"""Data lock: freeze the event log and the derived tables under a name (SHA-256 manifest).

A lock lives in <warehouse>/datalocks/<name>/:
  manifest.json          the cutoff, the head of the hash chain it froze (pipeline.store.chain),
                         every event-log / quarantine / ledger file with its SHA-256,
                         and every locked table file with its SHA-256 and row count
  manifest.json.sha256   the SHA-256 of manifest.json (sha256sum format)
  tables/<table>.csv|parquet   the derived tables as of the cutoff, rows sorted by key
  tables/adam/                 the ADaM datasets as of the cutoff (XPT, Dataset-JSON, adam_metadata.csv),
                               their creation instant the cutoff, so that re-deriving gives the same bytes

Verification re-derives as of the cutoff and compares the bytes, and checks that the chain
head the lock froze is still the record it was (`trialpipe verify` covers the rest of the log).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from pipeline.config import Paths, Study
from pipeline.derive.adam.write import ADAM_FORMATS, write_adam
from pipeline.derive.api import derive_in_memory
from pipeline.derive.export import FORMATS, write_tables
from pipeline.read_sql import sql_literal
from pipeline.store import chain
from pipeline.store.crash import crashpoint
from pipeline.store.warehouse import DATASETS, writer_lock

LOCKED_DATASETS = ("events", "quarantine", "batches")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MANIFEST = "manifest.json"


class LockError(OSError):
    """A data lock cannot be created (an OSError, so the command line reports it in one line)."""


def lock_dir(paths: Paths, name: str) -> Path:
    if not NAME.fullmatch(name):
        raise LockError(f"lock name {name!r} must be 1–64 letters, digits, '.', '_' or '-'")
    return paths.warehouse / "datalocks" / name


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _log_files(paths: Paths) -> list[Path]:
    """The committed files of the event log, quarantine and ledger.

    Every file is named after its batch; a batch is committed once its ledger record
    (batches/<batch_id>.parquet) exists, so leftovers of a crashed commit are not locked.
    """
    root = paths.warehouse
    committed = {p.stem for p in root.glob(DATASETS["batches"][0])}
    return sorted(p for name in LOCKED_DATASETS for p in root.glob(DATASETS[name][0]) if p.stem in committed)


def _ingested_at(files: list[Path], bound: str) -> datetime | None:
    """The min or max `ingested_at` in some Parquet files of the warehouse (None without rows)."""
    if not files:
        return None
    listing = ", ".join(sql_literal(str(p)) for p in files)
    con = duckdb.connect()
    try:
        sql = f"select {bound}(ingested_at) as t from read_parquet([{listing}], union_by_name = true)"
        value = con.sql(sql).to_arrow_table().column("t")[0].as_py()
    finally:
        con.close()
    return value.astimezone(UTC) if value is not None else None


def _write_locked_tables(paths: Paths, study: Study, cutoff: datetime, out: Path) -> list[Path]:
    con = derive_in_memory(paths, study, cutoff)
    try:
        written = [p for fmt in FORMATS for p in write_tables(con, out, fmt)]
        for fmt in ADAM_FORMATS:  # adam_metadata.csv comes with each format: listed once
            adam = write_adam(con, study.study_id, out / "adam", fmt, created=cutoff)
            written += [p for p in adam if p not in written]
        return written
    finally:
        con.close()


def create_lock(paths: Paths, study: Study, name: str) -> Path:
    """Freeze the current event log and its derived tables under `name`; refuses an existing name."""
    target = lock_dir(paths, name)
    if target.exists():
        raise LockError(f"data lock {name!r} already exists ({target}); a lock is never overwritten")
    with writer_lock(paths):
        created = datetime.now(UTC)
        head = chain.catch_up(paths)
        files = _log_files(paths)
        cutoff = _ingested_at(files, "max") or created
        for stale in target.parent.glob(f".{name}.*.tmp"):  # a lock run killed before its rename
            shutil.rmtree(stale, ignore_errors=True)
        staging = target.parent / f".{name}.{uuid.uuid4().hex}.tmp"
        try:
            tables = _write_locked_tables(paths, study, cutoff, staging / "tables")
            crashpoint("lock_writing")
            manifest: dict[str, Any] = {
                "lock": name,
                "study_id": study.study_id,
                "created_at": created.isoformat(),
                "cutoff": cutoff.isoformat(),
                "chain_head": None if head is None else {"seq": head.seq, "id": head.id, "record": head.record,
                                                         "sha256": head.sha256},
                "files": [
                    {"path": p.relative_to(paths.warehouse).as_posix(), "sha256": sha256_file(p),
                     "bytes": p.stat().st_size}
                    for p in files
                ],
                "tables": [
                    {"path": p.relative_to(staging).as_posix(), "sha256": sha256_file(p), "bytes": p.stat().st_size}
                    for p in tables
                ],
            }
            text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
            (staging / MANIFEST).write_text(text, encoding="utf-8")
            (staging / f"{MANIFEST}.sha256").write_text(
                f"{hashlib.sha256(text.encode()).hexdigest()}  {MANIFEST}\n", encoding="utf-8"
            )
            if target.exists():
                raise LockError(f"data lock {name!r} already exists ({target})")
            crashpoint("lock_before_rename")
            os.replace(staging, target)
            crashpoint("lock_after_rename")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def verify_lock(paths: Paths, study: Study, name: str) -> list[str]:
    """Problems with lock `name` (empty: verified).

    Checks that the manifest is intact, that every listed file still has its SHA-256, that no
    file ingested by the cutoff was added, and that re-deriving as of the cutoff reproduces
    every locked table byte for byte.
    """
    try:
        target = lock_dir(paths, name)
    except LockError as exc:
        return [str(exc)]
    manifest_path = target / MANIFEST
    if not manifest_path.is_file():
        return [f"data lock {name!r} not found ({manifest_path})"]
    problems: list[str] = []
    text = manifest_path.read_text(encoding="utf-8")
    seal = target / f"{MANIFEST}.sha256"
    expected_seal = (seal.read_text(encoding="utf-8").split() or [""])[0] if seal.is_file() else ""
    if hashlib.sha256(text.encode()).hexdigest() != expected_seal:
        problems.append(f"{MANIFEST} does not match {MANIFEST}.sha256: the manifest was changed")
    manifest = json.loads(text)
    cutoff = datetime.fromisoformat(manifest["cutoff"])

    listed = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
    problems += _changed(paths.warehouse, listed, "event-log file")
    problems += _added(paths, set(listed), cutoff)
    locked = {entry["path"]: entry["sha256"] for entry in manifest["tables"]}
    problems += _changed(target, locked, "locked table")
    problems += _frozen_head(paths, manifest.get("chain_head"))

    with tempfile.TemporaryDirectory(prefix=f"verify-{name}-", dir=paths.warehouse) as tmp:
        fresh_root = Path(tmp)
        _write_locked_tables(paths, study, cutoff, fresh_root / "tables")
        for rel, digest in sorted(locked.items()):
            fresh = fresh_root / rel
            if not fresh.is_file() or sha256_file(fresh) != digest:
                problems.append(f"re-deriving as of {cutoff.isoformat()} does not reproduce {rel}")
    return problems


def _frozen_head(paths: Paths, head: dict[str, Any] | None) -> list[str]:
    """The chain head the lock froze must still be the same record (its SHA-256 unchanged)."""
    if head is None:
        return []
    record = paths.warehouse / str(head["record"])
    if not record.is_file():
        return [f"the chain head the lock froze (#{head['seq']}, {head['id']}) is missing: {head['record']}"]
    if sha256_file(record) != head["sha256"]:
        return [f"the chain head the lock froze (#{head['seq']}, {head['id']}) changed: {head['record']}"]
    return []


def _changed(root: Path, listed: dict[str, str], what: str) -> list[str]:
    problems = []
    for rel, digest in sorted(listed.items()):
        path = root / rel
        if not path.is_file():
            problems.append(f"{what} {rel} is missing")
        elif sha256_file(path) != digest:
            problems.append(f"{what} {rel} changed (SHA-256 differs)")
    return problems


def _added(paths: Paths, listed: set[str], cutoff: datetime) -> list[str]:
    """Files not in the lock holding rows ingested by its cutoff (the log was altered, not appended)."""
    problems = []
    for path in _log_files(paths):
        rel = path.relative_to(paths.warehouse).as_posix()
        if rel in listed:
            continue
        earliest = _ingested_at([path], "min")
        if earliest is not None and earliest <= cutoff:
            problems.append(f"{rel} is not in the lock but holds rows ingested by its cutoff")
    return problems
