"""What the command line calls: derive (into trial.duckdb) and export."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from pipeline.config import Paths, Study
from pipeline.derive.alerts import derived_alerts
from pipeline.derive.build import Sources, build_tables
from pipeline.derive.export import write_log_tables, write_tables
from pipeline.store.alerts import append_alerts
from pipeline.store.crash import crashpoint
from pipeline.store.warehouse import configure, connect, writer_lock


@dataclass(frozen=True)
class DeriveResult:
    """Row counts of the derived tables, the cutoff they were derived as of, and new alerts."""

    rows: Mapping[str, int] = field(default_factory=dict)
    as_of: datetime | None = None
    alerts_raised: int = 0

    def describe(self) -> str:
        scope = f"as of {self.as_of.isoformat()}" if self.as_of else "from the whole event log"
        lines = [f"derived {len(self.rows)} tables {scope}"]
        lines += [f"  {name}: {count} rows" for name, count in self.rows.items()]
        lines.append(f"  derive alerts raised: {self.alerts_raised}")
        return "\n".join(lines)


def derive(paths: Paths, study: Study, as_of: datetime | None = None) -> DeriveResult:
    """Rebuild every derived table in trial.duckdb, in one transaction.

    With `as_of`, only events ingested by then take part. Derive-time alerts are
    raised only for the present (as_of None): a look at the past raises none.
    """
    with writer_lock(paths):
        crashpoint("derive_start")
        sources = Sources.from_warehouse(paths, as_of)
        con = connect(paths)
        try:
            con.execute("begin transaction")
            try:
                counts = build_tables(con, study, sources)
                crashpoint("derive_writing")
                alerts = derived_alerts(con) if as_of is None else []
                crashpoint("derive_before_swap")
                con.execute("commit")
                crashpoint("derive_after_swap")
            except BaseException:
                con.execute("rollback")
                raise
        finally:
            con.close()
        raised = append_alerts(paths, alerts, source="derive") if alerts else 0
    return DeriveResult(rows=counts, as_of=as_of, alerts_raised=raised)


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
    """Write every derived table, then events, quarantine and alerts, as <out>/<table>.csv or .parquet.

    The tables are derived afresh from the event log; with `as_of` everything is cut at that instant.
    """
    con = derive_in_memory(paths, study, as_of)
    try:
        return write_tables(con, Path(out), fmt) + write_log_tables(con, paths, Path(out), fmt, as_of)
    finally:
        con.close()
