"""Stage delivered files into a scratch DuckDB: typed rows plus the GX findings per row.

Staging needs no lock and writes nothing to the warehouse, so sites can be
staged in parallel; only the decision and commit that follow are serialised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from pipeline.config import Study
from pipeline.ingest.discover import LandingFile, file_format
from pipeline.ingest.gx_validate import RowChecker, merge_results
from pipeline.ingest.prepare import prepare
from pipeline.ingest.read import CHUNK_ROWS, FileRejected, FileShape, read_file
from pipeline.schema import CORRECTION_PAYLOAD, EVENT_SCHEMA, FIELDS

SEQ_STRIDE = 10_000_000_000  # seq = file_idx * SEQ_STRIDE + record number


@dataclass
class StagedFile:
    file: LandingFile
    sha256: str
    file_idx: int
    fmt: str | None
    rejected: FileRejected | None = None
    unknown_columns: list[str] = field(default_factory=list)
    received: int = 0


def scratch(path: Path | None, memory_limit: str = "1GB") -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path) if path else ":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    if path:
        con.execute(f"SET temp_directory = '{path.parent / 'tmp'}'")
    cols = ", ".join(f"{f.name} {_duck(f.kind)}" for f in FIELDS)
    con.execute(f"""CREATE TABLE IF NOT EXISTS rows (seq BIGINT, file_idx INTEGER, _row BIGINT, _raw VARCHAR,
                    {cols}, content_hash VARCHAR)""")
    con.execute("CREATE TABLE IF NOT EXISTS findings (seq BIGINT, rule VARCHAR, message VARCHAR)")
    # a correction's payload as the site sent it: typing turns a value that is not of its type into NULL, but
    # the per-type suites must see the text, as they do for a plain row (present, and echoed in the message)
    text_cols = ", ".join(f"{c} VARCHAR" for c in CORRECTION_PAYLOAD)
    con.execute(f"CREATE TABLE IF NOT EXISTS correction_text (seq BIGINT, {text_cols})")
    return con


def _duck(kind: str) -> str:
    return {"int": "INTEGER", "bool": "BOOLEAN", "timestamp": "TIMESTAMPTZ"}.get(kind, "VARCHAR")


def parameters(study: Study, site: str, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    return {
        "arms": list(study.arms),
        "site_id_set": [site],
        "latest_recorded_epoch": (now + timedelta(minutes=study.clock_skew_minutes)).timestamp(),
        "late_entry_days": study.late_entry_days,
    }


def file_level_rejection(f: LandingFile, study: Study) -> FileRejected | None:
    if f.site_folder not in study.site_ids:
        return FileRejected("unregistered_site", f"folder {f.site_folder!r} is not a registered site")
    if f.size > study.max_file_bytes:
        return FileRejected("file_too_large", f"{f.size} bytes is more than max_file_bytes = {study.max_file_bytes}")
    if file_format(f.path.name) is None:
        return FileRejected("unreadable", "unknown format: deliver .csv, .csv.gz, .jsonl, .jsonl.gz or .parquet")
    return None


class Stager:
    """Stages a site's files; GX validates the pending rows of several files in one run.

    A GX validation has a large fixed cost, so small deliveries are validated
    together (per site and batch of at most CHUNK_ROWS rows), keyed by `seq`.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, checker: RowChecker, study: Study,
                 now: datetime | None = None) -> None:
        self.con, self.checker, self.study, self.now = con, checker, study, now
        self.pending: list[tuple[int, pd.DataFrame]] = []
        self.pending_rows = 0
        self.results: dict[str, dict[str, Any]] = {}  # suite -> results merged so far (memory stays flat)
        self.site: str | None = None

    def add(self, f: LandingFile, sha: str, file_idx: int) -> StagedFile:
        """Read and type one file into `rows`; a file-level failure leaves nothing of it staged."""
        staged = StagedFile(f, sha, file_idx, file_format(f.path.name))
        staged.rejected = file_level_rejection(f, self.study)
        if staged.rejected or staged.fmt is None:
            return staged
        self.site = f.site_folder
        shape = FileShape()
        base = file_idx * SEQ_STRIDE
        try:
            for chunk in read_file(f.path, staged.fmt, shape):
                frame, typed = prepare(chunk)
                frame["_row"] = frame["_row"] + base
                self.con.register("typed_chunk", typed)
                self.con.execute(f"INSERT INTO rows SELECT {base} + _row, {file_idx}, _row, _raw, "
                                 f"{', '.join(f.name for f in FIELDS)}, content_hash FROM typed_chunk")
                self.con.unregister("typed_chunk")
                corrections = frame[frame["event_type"] == "correction"]
                if len(corrections):
                    self.con.register("text_chunk", corrections[["_row", *CORRECTION_PAYLOAD]])
                    self.con.execute(f"INSERT INTO correction_text SELECT _row, "
                                     f"{', '.join(f'CAST({c} AS VARCHAR)' for c in CORRECTION_PAYLOAD)} "
                                     f"FROM text_chunk")
                    self.con.unregister("text_chunk")
                staged.received += typed.num_rows
                self.pending.append((file_idx, frame))
                self.pending_rows += len(frame)
                if self.pending_rows >= CHUNK_ROWS:
                    self.flush()
        except FileRejected as exc:
            staged.rejected = exc
            self.pending = [(i, fr) for i, fr in self.pending if i != file_idx]
            self.pending_rows = sum(len(fr) for _, fr in self.pending)
            unstage(self.con, file_idx)
            staged.received = 0
            return staged
        staged.unknown_columns = shape.unknown_columns
        return staged

    def flush(self) -> None:
        """Validate the pending rows with the GX suites and store the findings by seq."""
        if not self.pending or self.site is None:
            return
        frame = pd.concat([fr for _, fr in self.pending], ignore_index=True)
        self.pending, self.pending_rows = [], 0
        verdict = self.checker.check(frame, parameters(self.study, self.site, self.now))
        found = [(seq, x.rule, x.message) for seq, xs in verdict.findings.items() for x in xs]
        if found:
            seqs, rules, messages = zip(*found, strict=True)
            self.con.register("found_chunk", pa.table({"seq": pa.array(seqs, pa.int64()), "rule": list(rules),
                                                       "message": list(messages)}))
            self.con.execute("INSERT INTO findings SELECT seq, rule, message FROM found_chunk")
            self.con.unregister("found_chunk")
        for suite, result in verdict.results.items():
            so_far = self.results.get(suite)
            self.results[suite] = result if so_far is None else merge_results([so_far, result])

    def validations(self) -> dict[str, dict[str, Any]]:
        """One GX validation result per suite for everything staged (counts summed over runs)."""
        self.flush()
        return dict(self.results)


def unstage(con: duckdb.DuckDBPyConnection, file_idx: int) -> None:
    lo, hi = file_idx * SEQ_STRIDE, (file_idx + 1) * SEQ_STRIDE
    con.execute(f"DELETE FROM rows WHERE seq >= {lo} AND seq < {hi}")
    con.execute(f"DELETE FROM findings WHERE seq >= {lo} AND seq < {hi}")
    con.execute(f"DELETE FROM correction_text WHERE seq >= {lo} AND seq < {hi}")


assert [f.name for f in FIELDS] == EVENT_SCHEMA.names[: len(FIELDS)]
