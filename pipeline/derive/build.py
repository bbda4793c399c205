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

from dataclasses import dataclass
from datetime import datetime

import duckdb

from pipeline.config import Paths, Study
from pipeline.read_sql import load_sql, sql_literal
from pipeline.store.crash import crashpoint
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
COUNTS = {"trajectory": "select " + " + ".join(f"count({p})" for p in PARAMS) + " from {main}.weekly_values"}


@dataclass(frozen=True)
class Sources:
    """SQL text of the inputs, already cut at the as-of instant.

    A full derivation reads all of them. An incremental one (incremental.py) narrows three:
    `events` to the events of the patients new batches touched, `delivered` to the events of the
    batches whose delivery statistics are recomputed and `recounted` (with `quarantine`) to the
    ledger records of the new batches; `batches` is always the whole ledger.
    """

    events: str
    batches: str = empty_select(BATCH_SCHEMA)
    quarantine: str = empty_select(QUARANTINE_SCHEMA)
    delivered: str = ""  # default: events
    recounted: str = ""  # default: batches
    small: bool = False  # `events` is a few patients' events: read them once into memory

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


#: the event columns the per-patient derivations read (log_anchors.sql, effective_events.sql): a few
#: patients' events are read with only these (a Parquet scan costs per column decoded)
EVENT_COLUMNS = (
    "event_id", "event_type", "site_id", "patient_id", "occurred_at", "recorded_at", "ingested_at",
    "target_event_id", "arm", "age_years", "sex", "affected_side", "leg_pain_nrs", "back_pain_nrs", "pain_extent",
    "paresthesia", "paresthesia_extent", "walking_tolerance_min", "bladder_dysfunction", "bowel_dysfunction",
    "saddle_numbness", "bilateral_symptoms", "global_recovery", "slr_angle_deg", "dorsiflexion_mrc",
    "plantarflexion_mrc", "calf_raise_count", "odi_score", "modality", "flag",
)
#: the per-patient derivations in dependency order, all temporary: each patient's rows depend on
#: that patient's events only, so they can be derived for some patients (incremental.py) or all
PATIENT_STEPS: tuple[Step, ...] = (
    Step("log_anchors", temp=True),
    Step("effective_events", script=True),
    Step("patients", temp=True),
    Step("observations", temp=True),
    Step("weekly_values", temp=True),
    Step("red_flag_events", temp=True),
    Step("red_flag_occurrences", temp=True),
    Step("patient_week", temp=True),
    Step("treatment_flares", temp=True),
    Step("red_flag_at_risk", temp=True),
    Step("recovery_times", temp=True),
    Step("dq_diary_patients", temp=True),
    Step("dq_diary_weeks", temp=True),
)
#: the per-patient tables stored in trial.duckdb: the columns kept (patient_key is this derivation's alias)
PATIENT_TABLES = {
    "weekly_values": "* exclude (patient_key)",
    "red_flag_occurrences": "*",
    "patient_week": "*",
    "treatment_flares": "*",
}
#: per-patient summaries kept in the schema derive_state, the only input of the aggregates;
#: each a select over the temporary tables, keyed by (site_id, patient_id)
SUMMARIES = {
    "red_flag_at_risk": "select * exclude (patient_key) from red_flag_at_risk",
    "recovery_times": "select * exclude (patient_key) from recovery_times",
    "derived_red_flags": """
        select p.site_id, p.patient_id, e.event_id, e.flag, e.occurred_at, e.study_day
        from red_flag_events as e join patients as p using (patient_key)
        where e.derived_only""",
    "dq_diary_patients": "select * exclude (patient_key) from dq_diary_patients",
    "dq_diary_weeks": "select * from dq_diary_weeks",
}
#: the delivery statistics, per batch and per site-week, over `delivered_events`
DELIVERY_STEPS: tuple[Step, ...] = (Step("dq_event_stats", temp=True), Step("dq_rule_counts", temp=True))
STATE = "derive_state"


def sql_text(name: str) -> str:
    """The SQL of one derivation step (pipeline/derive/sql/<name>.sql)."""
    return load_sql("pipeline.derive", f"sql/{name}.sql")


def _prepare(con: duckdb.DuckDBPyConnection, study: Study, sources: Sources) -> None:
    con.execute("set TimeZone = 'UTC'")
    con.execute(sql_text("macros"))
    kind = "table" if sources.small else "view"
    con.execute(f"create or replace temp {kind} accepted_events as {sources.events}")
    con.execute(
        "create or replace temp view accepted_observations as select * from accepted_events "
        "where event_type in ('symptom_report', 'assessment', 'treatment', 'red_flag')"
    )
    con.execute(f"create or replace temp view ingest_batches as {sources.batches}")
    con.execute(f"create or replace temp view quarantined_rows as {sources.quarantine}")
    con.execute(f"create or replace temp view delivered_events as {sources.delivered or sources.events}")
    con.execute(f"create or replace temp view recounted_batches as {sources.recounted or sources.batches}")
    con.execute("create or replace temp table study_sites as select unnest(?::varchar[]) as site_id",
                [list(study.site_ids)])
    con.execute("create or replace temp table study_arms as select unnest(?::varchar[]) as arm", [list(study.arms)])
    con.execute("create or replace temp table red_flag_flags as select unnest(?::varchar[]) as flag",
                [[*FLAGS, ANY_FLAG]])
    con.execute(f"create schema if not exists {STATE}")


def build_tables(con: duckdb.DuckDBPyConnection, study: Study, sources: Sources) -> dict[str, int]:
    """Build every derived table in `con` from scratch (CREATE OR REPLACE); returns row counts per table.

    The caller decides about transactions. Intermediate tables are temporary; the per-patient and
    per-batch summaries the aggregates are built from are stored in the schema derive_state.
    """
    return derive_tables(con, study, sources, scoped=False)


def derive_tables(con: duckdb.DuckDBPyConnection, study: Study, sources: Sources, scoped: bool) -> dict[str, int]:
    """Derive the per-patient rows of `sources.events`, then every aggregate; returns row counts.

    scoped=False replaces every table. scoped=True replaces only the rows of the patients in the
    temporary table scope_patients(site_id, patient_id) and the delivery statistics of the batches in
    `sources.delivered` / `sources.recounted`, keeping the rest (incremental.py).
    """
    _prepare(con, study, sources)
    # in full, the stored tables that keep every column are written directly (no temporary copy)
    direct = set() if scoped else {name for name, columns in PATIENT_TABLES.items() if columns == "*"}
    for step in PATIENT_STEPS:
        run_step(con, Step(step.name) if step.name in direct else step)
    main = stored_schema(con)
    for name, columns in PATIENT_TABLES.items():
        if name not in direct:
            _store(con, f"{main}.{name}", f"select {columns} from temp.{name}", scoped, "site_id, patient_id",
                   "scope_patients")
    crashpoint("derive_writing")
    if not scoped:
        run_step(con, Step("trajectory", view=True))
    for name, select in SUMMARIES.items():
        _store(con, f"{STATE}.{name}", select, scoped, "site_id, patient_id", "scope_patients")
    for step in DELIVERY_STEPS:
        run_step(con, step)
    _store_deliveries(con, scoped)
    build_aggregates(con)
    return {name: _count(con, name, main) for name in TABLES}


def stored_schema(con: duckdb.DuckDBPyConnection) -> str:
    """The stored tables' schema, named with its database: a bare `main.x` finds a temporary x first."""
    ((database,),) = con.execute("select current_database()").fetchall()
    return f'"{database}".main'


def _store(con: duckdb.DuckDBPyConnection, table: str, select: str, scoped: bool, key: str, keys_from: str) -> None:
    """Replace `table` by `select`, or (scoped) only its rows whose `key` is in `keys_from`."""
    if not scoped:
        con.execute(f"create or replace table {table} as {select}")
        return
    con.execute(f"delete from {table} where ({key}) in (select {key} from {keys_from})")
    con.execute(f"insert into {table} by name {select}")


def _store_deliveries(con: duckdb.DuckDBPyConnection, scoped: bool) -> None:
    """Keep the delivery statistics: per batch, per site-week, and which site-weeks each batch touched.

    Scoped, `delivered_events` holds every event of the site-weeks it touches, so the statistics of
    those site-weeks and of its batches are whole again; the rest are kept.
    """
    if scoped:
        con.execute(f"""
            delete from {STATE}.event_stats as s
            where (s.grouping = 'batch' and s.batch_id in
                       (select batch_id from dq_event_stats where grouping = 'batch'))
               or (s.grouping = 'site_week' and (s.site_id, s.iso_week) in
                       (select site_id, iso_week from dq_event_stats where grouping = 'site_week'))
        """)
        con.execute(f"insert into {STATE}.event_stats by name select * from dq_event_stats")
    else:
        con.execute(f"create or replace table {STATE}.event_stats as select * from dq_event_stats")
    _store(con, f"{STATE}.rule_counts", "select * from dq_rule_counts", scoped, "batch_id", "recounted_batches")
    _store(con, f"{STATE}.batch_weeks",
           "select distinct batch_id, site_id, iso_week_start(epoch_us(ingested_at)) as week_start "
           "from delivered_events", scoped, "batch_id", "(select distinct batch_id from delivered_events)")


def build_aggregates(con: duckdb.DuckDBPyConnection) -> None:
    """The aggregate tables, from the summaries in derive_state only (never from the log)."""
    from pipeline.derive.incidence import add_confidence_intervals
    from pipeline.derive.recovery import build_recovery_tables

    run_step(con, Step("red_flag_incidence", temp=True, target="red_flag_counts"))
    add_confidence_intervals(con)
    build_recovery_tables(con)
    run_step(con, Step("dq_batch"))
    run_step(con, Step("dq_site_week"))


def run_step(con: duckdb.DuckDBPyConnection, step: Step) -> None:
    """Build one step's table or view."""
    if step.script:
        con.execute(sql_text(step.name))
    elif step.temp:
        con.execute(f"create or replace temp table {step.table} as {sql_text(step.name)}")
    else:
        kind = "view" if step.view else "table"
        _drop_other_kind(con, step.table, kind)
        con.execute(f"create or replace {kind} {step.table} as {sql_text(step.name)}")


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


def _count(con: duckdb.DuckDBPyConnection, table: str, main: str) -> int:
    ((count,),) = con.sql(COUNTS.get(table, "select count(*) from {main}." + table).format(main=main)).fetchall()
    return int(count)
