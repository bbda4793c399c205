"""Run the SAP derivations, in order, inside one DuckDB connection.

Each step is a SQL file under `sql/` named after the table it builds (input CTEs,
logic CTEs, `select * from final`); a few steps finish in Python where SQL is
awkward (the confidence intervals and Kaplan–Meier curves, see incidence.py and
recovery.py). Steps marked `temp` build intermediate tables that live only as
long as the connection. `build_tables` knows nothing about files: it reads the
SQL text it is given for the accepted events, the ledger and the quarantine, so
tests can derive from literal events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import duckdb

from pipeline.config import Paths, Study
from pipeline.read_sql import load_sql, sql_literal
from pipeline.store.warehouse import BATCH_SCHEMA, QUARANTINE_SCHEMA, dataset_sql, empty_select, snapshot_sql

#: SAP §6: the seven red flags, then ANY (first occurrence of any of them)
FLAGS = ("BLADDER", "BOWEL", "SADDLE", "BILATERAL", "MOTOR", "PARESTHESIA_SPREAD", "OTHER")
ANY_FLAG = "ANY"

#: the derived tables (interface.md, plus dq_batch) and the key their rows are sorted by on export
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "trajectory": ("site_id", "patient_id", "param", "week"),
    "patient_week": ("site_id", "patient_id", "week"),
    "treatment_flares": ("site_id", "patient_id", "treatment_event_id"),
    "red_flag_occurrences": ("site_id", "patient_id", "flag"),
    "red_flag_incidence": ("stratum_type", "stratum", "flag"),
    "recovery_km": ("arm", "time_weeks"),
    "recovery_summary": ("arm",),
    "dq_site_week": ("site_id", "iso_week"),
    "dq_batch": ("batch_id",),
}
TABLES = tuple(TABLE_KEYS)

#: SAP §3 parameters, the columns of weekly_values that the view trajectory unpivots
PARAMS = ("LEGPAIN", "BACKPAIN", "EXTENT", "PARESTH", "WALK", "GPE", "ODI", "SLR", "DFMRC", "CALF")
#: row counts read without computing a view: trajectory has a row per value present in weekly_values
COUNTS = {"trajectory": "select " + " + ".join(f"count({p})" for p in PARAMS) + " from weekly_values"}


@dataclass(frozen=True)
class Sources:
    """SQL text of the inputs, already cut at the as-of instant."""

    events: str
    batches: str = empty_select(BATCH_SCHEMA)
    quarantine: str = empty_select(QUARANTINE_SCHEMA)

    @classmethod
    def from_warehouse(cls, paths: Paths, as_of: datetime | None = None) -> Sources:
        """The committed event log, ledger and quarantine with ingested_at <= as_of (all when None).

        Listed once, when the derivation starts: events committed while it runs wait for the next one.
        """
        return cls(
            events=_cut(snapshot_sql(paths, "events"), as_of),
            batches=_cut(dataset_sql(paths, "batches"), as_of),
            quarantine=_cut(snapshot_sql(paths, "quarantine"), as_of),
        )


def _cut(sql: str, as_of: datetime | None) -> str:
    if as_of is None:
        return sql
    return f"select * from ({sql}) where ingested_at <= {sql_literal(as_of.isoformat())}::timestamptz"


@dataclass(frozen=True)
class Step:
    """Run sql/<name>.sql into a table (temporary when `temp`, a view when `view`) called `target` (default: name)."""

    name: str
    temp: bool = False
    target: str = ""
    script: bool = False  # the file is run as it is (a macro definition, an update) instead of selected into a table
    view: bool = False  # a stored view instead of a table (computed when read)

    @property
    def table(self) -> str:
        return self.target or self.name


def _finish_incidence(con: duckdb.DuckDBPyConnection) -> None:
    from pipeline.derive.incidence import add_confidence_intervals

    add_confidence_intervals(con)


def _finish_recovery(con: duckdb.DuckDBPyConnection) -> None:
    from pipeline.derive.recovery import build_recovery_tables

    build_recovery_tables(con)


#: the derivations in dependency order; a Python finisher runs right after its step
STEPS: tuple[Step, ...] = (
    Step("log_anchors", temp=True),
    Step("effective_events", script=True),
    Step("patients", temp=True),
    Step("observations", temp=True),
    Step("weekly_values"),
    Step("trajectory", view=True),
    Step("red_flag_events", temp=True),
    Step("red_flag_occurrences"),
    Step("patient_week"),
    Step("treatment_flares"),
    Step("red_flag_at_risk", temp=True),
    Step("red_flag_incidence", temp=True, target="red_flag_counts"),  # incidence.py adds the intervals
    Step("recovery_times", temp=True),  # recovery.py builds recovery_km and recovery_summary
    Step("dq_event_stats", temp=True),
    Step("dq_rule_counts", temp=True),
    Step("dq_batch"),
    Step("dq_site_week"),
)
FINISHERS: dict[str, Callable[[duckdb.DuckDBPyConnection], None]] = {
    "red_flag_incidence": _finish_incidence,
    "recovery_times": _finish_recovery,
}


def sql_text(name: str) -> str:
    """The SQL of one derivation step (pipeline/derive/sql/<name>.sql)."""
    return load_sql("pipeline.derive", f"sql/{name}.sql")


def _prepare(con: duckdb.DuckDBPyConnection, study: Study, sources: Sources) -> None:
    con.execute("set TimeZone = 'UTC'")
    con.execute(sql_text("macros"))
    con.execute(f"create or replace temp view accepted_events as {sources.events}")
    con.execute(
        "create or replace temp view accepted_observations as select * from accepted_events "
        "where event_type in ('symptom_report', 'assessment', 'treatment', 'red_flag')"
    )
    con.execute(f"create or replace temp view ingest_batches as {sources.batches}")
    con.execute(f"create or replace temp view quarantined_rows as {sources.quarantine}")
    con.execute("create or replace temp table study_sites as select unnest(?::varchar[]) as site_id",
                [list(study.site_ids)])
    con.execute("create or replace temp table study_arms as select unnest(?::varchar[]) as arm", [list(study.arms)])
    con.execute("create or replace temp table red_flag_flags as select unnest(?::varchar[]) as flag",
                [[*FLAGS, ANY_FLAG]])


def build_tables(con: duckdb.DuckDBPyConnection, study: Study, sources: Sources) -> dict[str, int]:
    """Build every derived table in `con` (CREATE OR REPLACE); returns row counts per table.

    The caller decides about transactions. Intermediate tables are temporary.
    """
    _prepare(con, study, sources)
    for step in STEPS:
        run_step(con, step)
    return {name: _count(con, name) for name in TABLES}


def run_step(con: duckdb.DuckDBPyConnection, step: Step) -> None:
    """Build one step's table or view (then its Python finisher, if it has one)."""
    if step.script:
        con.execute(sql_text(step.name))
    elif step.temp:
        con.execute(f"create or replace temp table {step.table} as {sql_text(step.name)}")
    else:
        kind = "view" if step.view else "table"
        _drop_other_kind(con, step.table, kind)
        con.execute(f"create or replace {kind} {step.table} as {sql_text(step.name)}")
    finisher = FINISHERS.get(step.name)
    if finisher is not None:
        finisher(con)


def _drop_other_kind(con: duckdb.DuckDBPyConnection, name: str, kind: str) -> None:
    """Drop a stored table where a view of that name goes, or a view where a table goes.

    A warehouse derived by an earlier version may hold either; CREATE OR REPLACE does not
    replace one kind with the other.
    """
    other, catalog = ("table", "duckdb_tables()") if kind == "view" else ("view", "duckdb_views()")
    found = con.execute(
        f"select count(*) from {catalog} where database_name = current_database() "
        f"and schema_name = 'main' and {other}_name = ? and not temporary",
        [name],
    ).fetchall()
    if found[0][0]:
        con.execute(f"drop {other} main.{name}")


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    ((count,),) = con.sql(COUNTS.get(table, f"select count(*) from {table}")).fetchall()
    return int(count)
