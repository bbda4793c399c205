"""The hash chain over the ledger: every commit names the files it wrote and the record before it.

A *link* is one committed record of the log, in commit order:

* an ingest batch's ledger record `batches/<batch_id>.parquet` (columns chain_seq, chain_prev, files);
* a derive-time alert append or an adoption: `audit/links/<id>.json` (the same fields as JSON).

Each link carries its sequence number (1, 2, ...), the SHA-256 of the bytes of the link file
before it (`chain_prev`; 64 zeros for the first) and the SHA-256 and size of every file it
committed. `audit/head.json` names the last link and the SHA-256 of its file: it is rewritten
atomically right after the link lands, under the writer lock. The link itself stays the commit
point; a crash between the two leaves the head one link behind, and `catch_up` (run by
`commit.recover`) moves it on. A derive-alert file is visible only once its link exists, as a
batch's files are only once its ledger record does.

A warehouse written before the chain existed has ledger records without chain fields. Its first
chained commit marks the head `prechain_pending`; nothing is adopted until `trialpipe verify
--adopt` (pipeline.store.audit) says so.

This module is the write side and is imported by pipeline.store.warehouse; it imports nothing of
the warehouse's SQL side.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import Paths
from pipeline.store.crash import crashpoint
from pipeline.store.files import atomic_write_bytes

GENESIS = "0" * 64
HEAD = "head.json"


def audit_dir(paths: Paths) -> Path:
    return paths.warehouse / "audit"


def links_dir(paths: Paths) -> Path:
    return audit_dir(paths) / "links"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(paths: Paths, path: Path) -> dict[str, Any]:
    """The chain's entry for one committed file: its path under the warehouse, SHA-256 and size."""
    return {"path": rel(paths, path), "sha256": sha256_file(path), "bytes": path.stat().st_size}


def rel(paths: Paths, path: Path) -> str:
    return Path(path).relative_to(paths.warehouse).as_posix()


@dataclass(frozen=True)
class Head:
    """The last link: its number, id, file (under the warehouse) and the SHA-256 of that file."""

    seq: int
    id: str
    record: str
    sha256: str
    records: int  # link files plus pre-chain ledger records when this head was written (spots a lagging head)
    prechain_pending: bool = False  # pre-chain records exist that `verify --adopt` has not adopted yet

    def describe(self) -> str:
        return f"#{self.seq} {self.id} (sha256 {self.sha256[:16]}…)"


def read_head(paths: Paths) -> Head | None:
    path = audit_dir(paths) / HEAD
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return Head(**{k: data[k] for k in Head.__dataclass_fields__ if k in data})


def write_head(paths: Paths, head: Head) -> None:
    atomic_write_bytes((json.dumps(asdict(head), sort_keys=True, indent=1) + "\n").encode(), audit_dir(paths) / HEAD)


def record_files(paths: Paths) -> list[Path]:
    """Every file that is a link or a ledger record (chained or not)."""
    found = list(paths.batches_dir.glob("*.parquet")) if paths.batches_dir.exists() else []
    return found + sorted(links_dir(paths).glob("*.json"))


def derive_alert_files(paths: Paths) -> list[Path]:
    return sorted(paths.alerts_dir.glob("derive-*.parquet")) if paths.alerts_dir.exists() else []


def read_link(path: Path, data: bytes | None = None) -> dict[str, Any]:
    """A link's fields (seq None for a pre-chain ledger record); raises ValueError when unreadable."""
    try:
        if path.suffix == ".json":
            link = json.loads(data if data is not None else path.read_bytes())
            return {"id": str(link["id"]), "kind": str(link["kind"]), "seq": int(link["seq"]),
                    "prev": str(link["prev"]), "files": list(link["files"])}
        table = pq.read_table(path if data is None else pa.BufferReader(data))
        row = table.to_pylist()[0]
    except Exception as exc:  # a changed or truncated file: the verifier reports it by name
        raise ValueError(f"unreadable ({type(exc).__name__})") from exc
    return {"id": str(row.get("batch_id")), "kind": "batch", "seq": row.get("chain_seq"),
            "prev": row.get("chain_prev"), "files": list(row.get("files") or [])}


def _prechain_data(paths: Paths, link_id: str = "") -> bool:
    """Whether a warehouse without a head already holds a log (written before the chain existed)."""
    return bool(record_files(paths)) or any(p.stem != link_id for p in derive_alert_files(paths))


def _scan(paths: Paths) -> tuple[tuple[int, str, str, str] | None, bool]:
    """(seq, id, record, sha256) of the chained link with the highest number, and whether pre-chain records exist."""
    best: tuple[int, str, str, str] | None = None
    linked = linked_ids(paths)
    prechain = any(p.stem not in linked for p in derive_alert_files(paths))
    for path in record_files(paths):
        data = path.read_bytes()
        try:
            link = read_link(path, data)
        except ValueError:
            continue
        if link["seq"] is None:
            prechain = True
        elif best is None or int(link["seq"]) > best[0]:
            best = (int(link["seq"]), link["id"], rel(paths, path), hashlib.sha256(data).hexdigest())
    return best, prechain


def catch_up(paths: Paths) -> Head | None:
    """The head, moved on to the last link when a crash left it behind. Caller holds the writer lock."""
    head = read_head(paths)
    if head is not None and len(record_files(paths)) == head.records:
        return head
    last, prechain = _scan(paths)
    if last is None or (head is not None and last[0] <= head.seq):
        return head
    pending = head.prechain_pending if head is not None else prechain
    head = Head(last[0], last[1], last[2], last[3], len(record_files(paths)), pending)
    write_head(paths, head)
    return head


def next_link(paths: Paths, link_id: str) -> tuple[int, str, bool]:
    """(seq, prev, prechain_pending) for the link `link_id` about to be written. Caller holds the writer lock."""
    head = catch_up(paths)
    if head is None:
        return 1, GENESIS, _prechain_data(paths, link_id)
    return head.seq + 1, head.sha256, head.prechain_pending


def advance(paths: Paths, seq: int, link_id: str, record: Path, prechain_pending: bool) -> Head:
    """Make the link just written (the commit point) the head of the chain."""
    crashpoint("before_head")
    head = Head(seq, link_id, rel(paths, record), sha256_file(record), len(record_files(paths)), prechain_pending)
    write_head(paths, head)
    return head


def append_link(paths: Paths, link_id: str, kind: str, files: list[Path], prechain_pending: bool | None = None,
                extra: dict[str, Any] | None = None) -> Head:
    """Commit `files` (already written) as one link audit/links/<link_id>.json. Caller holds the writer lock."""
    seq, prev, pending = next_link(paths, link_id)
    link = {"id": link_id, "kind": kind, "seq": seq, "prev": prev, "created_at": datetime.now(UTC).isoformat(),
            "files": [file_entry(paths, p) for p in files], **(extra or {})}
    target = links_dir(paths) / f"{link_id}.json"
    atomic_write_bytes((json.dumps(link, sort_keys=True, indent=1) + "\n").encode(), target)
    crashpoint("after_link")
    return advance(paths, seq, link_id, target, pending if prechain_pending is None else prechain_pending)


def chain_active(paths: Paths) -> bool:
    """Derive-alert files need a link to be visible (a head exists and every pre-chain file is adopted)."""
    head = read_head(paths)
    return head is not None and not head.prechain_pending


def linked_ids(paths: Paths) -> set[str]:
    """The ids of the links kept as audit/links/*.json (derive-alert appends, adoptions)."""
    return {p.stem for p in links_dir(paths).glob("*.json")}


def unlinked_derive_files(paths: Paths) -> list[Path]:
    """Derive-alert files whose link never landed (a crash mid-append): invisible, removed by recover."""
    if not chain_active(paths):
        return []
    linked = linked_ids(paths)
    return [p for p in derive_alert_files(paths) if p.stem not in linked]
