"""Stage delivered files into a scratch DuckDB: typed rows plus the GX findings per row.

Staging needs no lock and writes nothing to the warehouse, so sites can be
staged in parallel; only the decision and commit that follow are serialised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from pipeline.config import Study
from pipeline.ingest.crossrow import insert_findings
from pipeline.ingest.discover import LandingFile, file_format
from pipeline.ingest.gx_validate import RowChecker, merge_results
from pipeline.ingest.prepare import checks_sql, content_hash_sql, typed_sql
from pipeline.ingest.read import MALFORMED, FileRejected, FileShape
from pipeline.ingest.read_duckdb import DELIVERED, Route, drop, read_into
from pipeline.schema import ALL_COLUMNS, CORRECTION_PAYLOAD, EVENT_SCHEMA, FIELDS

SEQ_STRIDE = 10_000_000_000  # seq = file_idx * SEQ_STRIDE + record number
#: the staged rows as the GX suites read them (text + helper columns), `_row` = seq; in memory, see scratch()
CHECKS = "mem.checks"


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
    # the transient rows GX reads (`CHECKS`) live in memory (spilled to temp_directory beyond the limit):
    # inserting them into the file costs more than validating them, and nothing reads them after a GX run
    con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {CHECKS.split('.')[0]}")
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


VALIDATE_ROWS = 2_000_000  # pending rows that start a GX run (bounds the scratch's `checks` table)
SLICE_ROWS = 1_000_000  # record numbers of a delivered file staged at once (a GX run may follow each slice)


class Stager:
    """Stages a site's files; GX validates the pending rows of all its files in one run, inside DuckDB.

    DuckDB reads each file into the scratch (`_delivered`, text), which is then typed into `rows` and,
    as the suites read it, into `checks` (all spill to disk beyond the memory limit). A GX validation has a fixed
    cost, so a site-run's rows are validated together, keyed by `seq`.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, checker: RowChecker, study: Study,
                 now: datetime | None = None) -> None:
        self.con, self.checker, self.study, self.now = con, checker, study, now
        self.pending_rows = 0
        self.results: dict[str, dict[str, Any]] = {}  # suite -> results merged so far
        self.site: str | None = None
        self.on_bytes: Callable[[int], None] | None = None  # bytes of the current file read (progress display)
        self.route: Route | None = None  # how the last file was read (DuckDB or the Python reader)

    def add(self, f: LandingFile, sha: str, file_idx: int) -> StagedFile:
        """Read one file into the scratch (DuckDB, see read_duckdb) and type it into `rows`.

        A file-level failure leaves nothing of it staged.
        """
        staged = StagedFile(f, sha, file_idx, file_format(f.path.name))
        staged.rejected = file_level_rejection(f, self.study)
        if staged.rejected or staged.fmt is None:
            return staged
        self.site = f.site_folder
        shape = FileShape()
        try:
            self.route = read_into(self.con, f.path, staged.fmt, shape, self.study.max_file_bytes, self.on_bytes)
            staged.received = self._stage_delivered(file_idx)
        except FileRejected as exc:
            staged.rejected = exc
            unstage(self.con, file_idx)
            self.pending_rows = _count(self.con, CHECKS)
            staged.received = 0
            return staged
        finally:
            self.con.execute("DROP VIEW IF EXISTS chunk")
            drop(self.con)
        staged.unknown_columns = shape.unknown_columns
        return staged

    def _stage_delivered(self, file_idx: int) -> int:
        """The delivered records (`_delivered`) into the staging tables, SLICE_ROWS record numbers at a time."""
        (last,) = self.con.execute(f"SELECT coalesce(max(_row), 0) FROM {DELIVERED}").fetchall()[0]
        received = 0
        for lo in range(0, int(last), SLICE_ROWS):
            where = "" if last <= SLICE_ROWS else f" WHERE _row > {lo} AND _row <= {lo + SLICE_ROWS}"
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW chunk AS SELECT * FROM {DELIVERED}{where}")
            received += self._stage_chunk(file_idx)
        return received

    def _stage_chunk(self, file_idx: int) -> int:
        """The view `chunk` of delivered text into `rows`, `checks` and `correction_text`; its row count."""
        present = {*ALL_COLUMNS, MALFORMED}
        con, base = self.con, file_idx * SEQ_STRIDE
        (n,) = con.execute("SELECT count(*) FROM chunk").fetchall()[0]
        if not n:
            return 0
        con.execute(f"INSERT INTO rows SELECT {base} + _row, {file_idx}, _row, _raw, "
                    f"{', '.join(f.name for f in FIELDS)}, {content_hash_sql()} FROM ({typed_sql(present)})")
        checks = f"SELECT * REPLACE ({base} + _row AS _row) FROM ({checks_sql(present)})"
        if not _exists(con, CHECKS):
            con.execute(f"CREATE TABLE {CHECKS} AS {checks}")
        else:
            con.execute(f"INSERT INTO {CHECKS} {checks}")
        payload = ", ".join(CORRECTION_PAYLOAD)
        con.execute(f"INSERT INTO correction_text SELECT {base} + _row, {payload} FROM chunk "
                    f"WHERE event_type = 'correction'")
        self.pending_rows += int(n)
        if self.pending_rows >= VALIDATE_ROWS:
            self.flush()
        return int(n)

    def flush(self) -> None:
        """Validate the pending rows with the GX suites (in DuckDB) and store the findings by seq."""
        if not self.pending_rows or self.site is None:
            return
        verdict = self.checker.check_table(self.con, CHECKS, parameters(self.study, self.site, self.now))
        found = [(seq, x.rule, x.message) for seq, xs in verdict.findings.items() for x in xs]
        insert_findings(self.con, found)
        self.con.execute(f"DROP TABLE {CHECKS}")  # (no write to it is then left for the commit's transaction)
        self.pending_rows = 0
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
    if _exists(con, CHECKS):
        con.execute(f"DELETE FROM {CHECKS} WHERE _row >= {lo} AND _row < {hi}")


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether a (database-qualified) table exists: `rows` in the scratch file, `mem.checks` in memory."""
    database, _, name = table.rpartition(".")
    found = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND NOT temporary "
                        "AND database_name = coalesce(nullif(?, ''), current_database())", [name, database])
    return bool(found.fetchall()[0][0])


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    if not _exists(con, table):
        return 0
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


assert [f.name for f in FIELDS] == EVENT_SCHEMA.names[: len(FIELDS)]
