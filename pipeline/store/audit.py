"""`trialpipe verify`: re-hash the whole warehouse log against the hash chain (pipeline.store.chain).

One line per problem, naming the batch and the file: a file changed, missing or added; a ledger
record changed, removed, reordered or added outside the chain; a head that does not match.

**Verify reads while ingest commits, without the writer lock.** It reads the head first, then lists
the links, then the data files. A commit writes its files, then its record, then the head, so
every link up to the head read is listed; links beyond it (a commit meanwhile) must continue the
chain from the head. A data file whose batch has no link yet is a batch being committed (or the
leftover of a crash, which `commit.recover` removes): no reader sees it, so verify does not count
it as a problem; it reports how many it passed over.

**Adoption.** A warehouse written before the chain existed fails verification until
`trialpipe verify --adopt` appends one link claiming every file not yet chained (its pre-chain
ledger records, their data files and derive-time alerts). Adoption is explicit and happens once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from pipeline.config import Paths
from pipeline.read_sql import sql_literal
from pipeline.store import chain
from pipeline.store.commit import recover
from pipeline.store.files import atomic_write_bytes
from pipeline.store.warehouse import BATCH_SCHEMA, empty_select, writer_lock

ADOPT_HINT = "run `trialpipe verify --adopt` once to chain them"
#: the data files a link can commit, as globs under the warehouse
DATA_GLOBS = ("events/site=*/*.parquet", "quarantine/site=*/*.parquet", "alerts/*.parquet", "validations/*/*.json")


class AuditError(OSError):
    """Verification or adoption cannot run (an OSError: the command line reports it in one line)."""


@dataclass
class Verification:
    """What verify found: the problems (empty when the log holds), the head and what was checked."""

    problems: list[str] = field(default_factory=list)
    head: chain.Head | None = None
    links: int = 0
    files: int = 0
    bytes: int = 0
    leftovers: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        if not self.ok:
            return f"the log does not verify: {len(self.problems)} problem(s)"
        head = self.head.describe() if self.head else "none (empty log)"
        skipped = f"; {self.leftovers} file(s) of uncommitted batches passed over" if self.leftovers else ""
        return (f"verified: {self.links} link(s), {self.files} file(s), {self.bytes} bytes; "
                f"chain head {head}{skipped}")


@dataclass
class _Link:
    path: Path
    rel: str
    sha256: str
    id: str
    kind: str
    seq: int | None
    prev: str | None
    files: list[dict[str, Any]]


def batch_of(rel: str) -> str:
    """The batch (or link) id a data file belongs to: every file is named after it."""
    return rel.rsplit("/", 1)[-1].split(".", 1)[0]


def _hash_bytes(path: Path) -> tuple[str, int] | None:
    try:
        return chain.sha256_file(path), path.stat().st_size
    except FileNotFoundError:
        return None


def _hash_all(paths: Iterable[Path]) -> list[tuple[str, int] | None]:
    """SHA-256 and size of each file (None when missing), on a few threads (hashlib releases the GIL)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(_hash_bytes, paths))


def _read_links(paths: Paths, problems: list[str]) -> list[_Link]:
    """Every link and ledger record, with the SHA-256 of its file; unreadable ones are problems."""
    files = chain.record_files(paths)
    hashed = _hash_all(files)
    fields = _bulk_fields(paths, [p for p, h in zip(files, hashed, strict=True) if h and p.suffix == ".parquet"])
    links = []
    for path, got in zip(files, hashed, strict=True):
        if got is None:
            continue  # gone since it was listed: only a test removes records
        rel = chain.rel(paths, path)
        try:
            f = fields[str(path)] if str(path) in fields else chain.read_link(path)
        except ValueError as exc:
            problems.append(f"batch {path.stem}: ledger record {rel} is {exc}: it was changed")
            continue
        links.append(_Link(path, rel, got[0], f["id"], f["kind"],
                           None if f["seq"] is None else int(f["seq"]), f["prev"], f["files"]))
    return links


def _bulk_fields(paths: Paths, records: list[Path]) -> dict[str, dict[str, Any]]:
    """The chain fields of many ledger records in one DuckDB read (empty when one of them is unreadable)."""
    if not records:
        return {}
    listing = ", ".join(sql_literal(str(p)) for p in records)
    sql = (f"SELECT filename, batch_id, chain_seq, chain_prev, files FROM (SELECT * FROM read_parquet([{listing}], "
           f"union_by_name = true, filename = true) UNION ALL BY NAME "
           f"SELECT NULL::VARCHAR AS filename, * FROM ({empty_select(BATCH_SCHEMA)}))")
    con = duckdb.connect()
    try:
        rows = con.execute(sql).fetchall()
    except duckdb.Error:
        return {}  # a changed file: each record is read on its own, and the broken one named
    finally:
        con.close()
    return {str(name): {"id": str(batch), "kind": "batch", "seq": seq, "prev": prev, "files": list(files or [])}
            for name, batch, seq, prev, files in rows}


def _name(link: _Link) -> str:
    return f"batch {link.id}" if link.kind == "batch" else f"{link.kind} {link.id}"


def _check_order(chained: list[_Link], head: chain.Head | None) -> list[str]:
    """Problems of the chain itself: numbers, previous hashes, the head."""
    problems: list[str] = []
    by_seq: dict[int, list[_Link]] = {}
    for link in chained:
        by_seq.setdefault(int(link.seq or 0), []).append(link)
    by_hash = {link.sha256: link for link in chained}
    top = max([*by_seq, head.seq if head else 0])
    for seq in range(1, top + 1):
        here = by_seq.get(seq, [])
        if not here:
            before, after = by_seq.get(seq - 1), by_seq.get(seq + 1)
            around = (f" (after {_name(before[0])})" if before else "") + (
                f" (before {_name(after[0])})" if after else "")
            problems.append(f"ledger record #{seq} removed{around}: the chain has a gap")
            continue
        if len(here) > 1:
            problems.append(f"ledger record #{seq} claimed by {len(here)} records "
                            f"({', '.join(_name(x) for x in here)}): a record was added or reordered")
        for link in here:
            expected = chain.GENESIS if seq == 1 else None
            prior = by_seq.get(seq - 1, [])
            if expected is None and len(prior) == 1:
                expected = prior[0].sha256
            if expected is None or link.prev == expected:
                continue
            follows = by_hash.get(str(link.prev))
            if follows is not None:
                problems.append(f"{_name(link)}: ledger records reordered: #{seq} follows #{follows.seq} "
                                f"({_name(follows)}), not #{seq - 1}")
            elif seq == 1:
                problems.append(f"{_name(link)}: ledger record #1 does not start the chain: records before it removed")
            else:
                problems.append(f"{_name(prior[0])}: ledger record {prior[0].rel} changed "
                                f"(its SHA-256 differs from the one chained by #{seq}, {_name(link)})")
    if head is not None:
        at = by_seq.get(head.seq, [])
        if len(at) == 1 and at[0].sha256 != head.sha256:
            problems.append(f"{_name(at[0])}: ledger record {at[0].rel} changed "
                            f"(its SHA-256 differs from the head of the chain, #{head.seq})")
    elif chained:
        problems.append("the head of the chain (audit/head.json) is missing")
    return problems


def _check_files(paths: Paths, chained: list[_Link], result: Verification) -> None:
    entries = [(link, entry) for link in chained for entry in link.files]
    hashed = _hash_all(paths.warehouse / str(e["path"]) for _, e in entries)
    for (link, entry), got in zip(entries, hashed, strict=True):
        if got is None:
            result.problems.append(f"{_name(link)}: file {entry['path']} missing")
        elif got[0] != entry["sha256"] or got[1] != entry["bytes"]:
            result.problems.append(f"{_name(link)}: file {entry['path']} changed (SHA-256 differs)")
        else:
            result.bytes += got[1]
    result.files = len(entries)


def _unclaimed(paths: Paths, claimed: set[str]) -> list[str]:
    root = paths.warehouse
    return sorted(r for g in DATA_GLOBS for p in root.glob(g) if (r := p.relative_to(root).as_posix()) not in claimed)


def verify(paths: Paths) -> Verification:
    """Re-hash the whole log against the chain (see the module's docstring for concurrent commits)."""
    result = Verification(head=chain.read_head(paths))  # the head first, then the links, then the files
    links = _read_links(paths, result.problems)
    chained = [x for x in links if x.seq is not None]
    prechain = [x for x in links if x.seq is None]
    result.links = len(chained)
    pending = result.head is None or result.head.prechain_pending
    claimed = {str(e["path"]) for x in chained for e in x.files}
    outside = [x for x in prechain if x.rel not in claimed]
    if pending and (outside or result.head is not None):
        result.problems.append(f"this warehouse was written before the audit chain: {len(outside)} ledger "
                               f"record(s) are not chained; {ADOPT_HINT}")
    elif not pending:
        result.problems += [f"batch {x.id}: ledger record {x.rel} added outside the chain" for x in outside]
    result.problems += _check_order(chained, result.head)
    _check_files(paths, chained, result)
    committed = {x.id for x in links}
    unchained = {x.id for x in outside}
    for rel in _unclaimed(paths, claimed):
        owner = batch_of(rel)
        if pending and (owner in unchained or (owner.startswith("derive-") and owner not in committed)):
            continue  # a pre-chain file: the adoption line above covers it
        if owner in committed:
            result.problems.append(f"batch {owner}: file {rel} added (not among the files its record chained)")
        else:
            result.leftovers += 1
    return result


def adopt(paths: Paths) -> chain.Head:
    """Chain a warehouse written before the chain existed: one link claiming every file not yet chained."""
    with writer_lock(paths):
        recover(paths)
        head = chain.read_head(paths)
        problems: list[str] = []
        links = _read_links(paths, problems)
        if problems:
            raise AuditError(f"cannot adopt: {problems[0]}")
        prechain = [x for x in links if x.seq is None]
        if head is not None and not head.prechain_pending:
            raise AuditError("the warehouse is already chained; nothing to adopt (adoption happens once)")
        claimed = {e["path"] for x in links if x.seq is not None for e in x.files}
        owners = {x.id for x in prechain}
        files = [x.path for x in prechain]
        files += [paths.warehouse / r for r in _unclaimed(paths, claimed)
                  if batch_of(r) in owners or batch_of(r).startswith("derive-")]
        if not files:
            raise AuditError("nothing to adopt: no ledger record was written before the chain")
        link_id = f"adopt-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        return chain.append_link(paths, link_id, "adopt", sorted(files), prechain_pending=False,
                                 extra={"adopted_records": len(prechain)})


def record_unverified(paths: Paths, command: str, result: Verification) -> Path:
    """Keep, append-only, that `command` ran on a log that failed verification (--accept-unverified)."""
    at = datetime.now(UTC)
    target = chain.audit_dir(paths) / "unverified" / f"{at:%Y%m%dT%H%M%S%f}-{command}-{uuid.uuid4().hex[:8]}.json"
    record = {"command": command, "at": at.isoformat(), "problems": result.problems,
              "head": None if result.head is None else result.head.describe()}
    atomic_write_bytes((json.dumps(record, indent=1, sort_keys=True) + "\n").encode(), target)
    return target
