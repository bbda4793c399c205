"""What the command line calls: derive (into trial.duckdb) and export."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from pipeline.config import Paths, Study
from pipeline.derive.alerts import derived_alerts
from pipeline.derive.build import Sources, build_tables, derive_tables
from pipeline.derive.export import write_export
from pipeline.derive.incremental import plan, scoped_sources, write_state
from pipeline.store.alerts import alert_key, append_alerts, raised_keys
from pipeline.store.crash import crashpoint
from pipeline.store.warehouse import MEMORY_LIMIT, configure, connect, writer_lock


@dataclass(frozen=True)
class DeriveResult:
    """Row counts of the derived tables, the cutoff they were derived as of, and new alerts."""

    rows: Mapping[str, int] = field(default_factory=dict)
    as_of: datetime | None = None
    alerts_raised: int = 0
    scope: str = ""  # what was re-derived: every patient, or the patients of the new batches

    def describe(self) -> str:
        scope = f"as of {self.as_of.isoformat()}" if self.as_of else "from the whole event log"
        lines = [f"derived {len(self.rows)} tables {scope}"]
        lines += [f"  {name}: {count} rows" for name, count in self.rows.items()]
        lines.append(f"  derive alerts raised: {self.alerts_raised}")
        if self.scope:
            lines.append(f"  {self.scope}")
        return "\n".join(lines)


#: DuckDB's memory_limit bounds its buffers, not the process: the Python side and allocations outside
#: the buffer manager come on top, so derive gives DuckDB this share of TRIALPIPE_MEMORY_LIMIT
#: (at 4 M events: a peak RSS of 1.2 GB with the whole limit, 0.9 GB with 70 %)
DUCKDB_SHARE = 0.7
UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def derive_memory_limit(limit: str = MEMORY_LIMIT) -> str:
    """DUCKDB_SHARE of a DuckDB memory size such as '1GB' (as given when it cannot be read)."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", limit)
    if not match or match.group(2).upper() not in UNITS:
        return limit
    size = float(match.group(1)) * UNITS[match.group(2).upper() or "B"]
    return f"{int(size * DUCKDB_SHARE) // 10**6}MB"


def derive(paths: Paths, study: Study, as_of: datetime | None = None) -> DeriveResult:
    """Bring every derived table in trial.duckdb up to date with the event log, in one transaction.

    After new batches only the patients they touched are re-derived (incremental.py); the first
    time, with `as_of`, or whenever the stored state cannot be trusted, everything is. With `as_of`,
    only events ingested by then take part. Derive-time alerts are raised only for the present
    (as_of None), after the tables are committed: a look at the past raises none.
    """
    with writer_lock(paths):
        crashpoint("derive_start")
        con = connect(paths)
        try:
            con.execute(f"set memory_limit = '{derive_memory_limit()}'")
            decided = plan(con, paths, study, as_of)
            sources = None if decided.full else scoped_sources(con, paths, decided.new_batches)
            con.execute("begin transaction")
            try:
                if sources is None:
                    counts = build_tables(con, study, Sources.from_warehouse(paths, as_of))
                    scope = f"full derivation: {decided.reason or 'many patients touched'}"
                else:
                    counts = derive_tables(con, study, sources, scoped=True)
                    ((touched,),) = con.execute("select count(*) from scope_patients").fetchall()
                    scope = f"incremental: {len(decided.new_batches)} new batches, {touched} patients re-derived"
                write_state(con, study, as_of, full=sources is None)
                crashpoint("derive_before_swap")
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise
            crashpoint("derive_after_swap")
            alerts = derived_alerts(con) if as_of is None else []
        finally:
            con.close()
        if alerts:  # most derivations find none new: skip building an empty Arrow table (imports pandas)
            already = raised_keys(paths)
            alerts = [a for a in alerts if alert_key(a["site_id"], a["patient_id"], a["event_id"], a["flag"])
                      not in already]
        raised = append_alerts(paths, alerts, source="derive") if alerts else 0
    return DeriveResult(rows=counts, as_of=as_of, alerts_raised=raised, scope=scope)


def derive_in_memory(paths: Paths, study: Study, as_of: datetime | None = None) -> duckdb.DuckDBPyConnection:
    """Derive into a fresh in-memory database (trial.duckdb untouched); the caller closes it."""
    con = duckdb.connect()
    try:
        configure(con, paths)
        build_tables(con, study, Sources.from_warehouse(paths, as_of))
    except BaseException:
        con.close()
        raise
    return con


def export(paths: Paths, study: Study, fmt: str, out: Path, as_of: datetime | None = None) -> list[Path]:
    """Write every derived table, then events, quarantine and alerts, as <out>/<table>.csv or .parquet;
    or, as xpt or dataset-json, the ADaM datasets and adam_metadata.csv.

    The tables are derived afresh from the event log; with `as_of` everything is cut at that instant.
    """
    con = derive_in_memory(paths, study, as_of)
    try:
        return write_export(con, paths, study, Path(out), fmt, as_of)
    finally:
        con.close()
