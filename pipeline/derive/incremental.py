"""Incremental derivation: after new batches, re-derive only the patients they touched.

Every per-patient row (weekly_values, patient_week, treatment_flares, red_flag_occurrences and
the summaries in derive_state) depends on that patient's events alone, and every event of a
delivery names its patient: a correction, retraction or withdrawal names the patient of the
event it edits (the ingest accepts no other). So the patients a set of new batches can change
are exactly the (site_id, patient_id) pairs in those batches' event files. Their events are read
back from the whole log (also the old ones), their rows replaced; the aggregates are rebuilt
from the summaries. Delivery statistics are per batch and per site × ISO week of ingestion: the
site-weeks the new batches fall in are recomputed from all their batches' files.

The state that decides what is new lives in trial.duckdb itself (derive_state.meta, .derived_batches),
written in the same transaction as the tables: a crash leaves the old tables with the old state or
the new with the new. Anything unusual (no state, another derivation version, a different study
configuration, a table derived as of a past instant, a batch gone from the ledger, many touched
patients) falls back to a full derivation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import duckdb

from pipeline.config import Paths, Study
from pipeline.derive.build import EVENT_COLUMNS, STATE, Sources, sql_text
from pipeline.read_sql import sql_literal
from pipeline.store.warehouse import DATASETS, committed_batch_ids, dataset_sql, empty_select, snapshot_sql

#: bump when the meaning of a stored summary changes without its SQL text changing
STATE_VERSION = "1"
#: above this share of the analysed patients touched, a full derivation is cheaper
FULL_SHARE = 0.3


def derivation_version() -> str:
    """A fingerprint of the derivation code: state from another version is not trusted."""
    digest = hashlib.sha256(STATE_VERSION.encode())
    for path in sorted(resources.files("pipeline.derive").joinpath("sql").iterdir(), key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def study_fingerprint(study: Study) -> str:
    return hashlib.sha256(repr((study.site_ids, study.arms)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    """What a derivation will do: `full`, or update for `new_batches` (empty: nothing to do)."""

    full: bool
    new_batches: tuple[str, ...] = ()
    reason: str = ""


def plan(con: duckdb.DuckDBPyConnection, paths: Paths, study: Study, as_of: object | None) -> Plan:
    """Full or incremental, from the state stored with the tables and the committed batches."""
    if as_of is not None:
        return Plan(True, reason="as of a past instant")
    meta = _meta(con)
    if meta is None:
        return Plan(True, reason="no derivation state")
    if meta.get("version") != derivation_version():
        return Plan(True, reason="derived by another version")
    if meta.get("study") != study_fingerprint(study):
        return Plan(True, reason="study configuration changed")
    if meta.get("as_of"):
        return Plan(True, reason="tables derived as of a past instant")
    derived = {b for (b,) in con.execute(f"select batch_id from {STATE}.derived_batches").fetchall()}
    committed = committed_batch_ids(paths)
    if not derived <= committed:
        return Plan(True, reason="a derived batch left the ledger")
    return Plan(False, tuple(sorted(committed - derived)))


def _meta(con: duckdb.DuckDBPyConnection) -> dict[str, str] | None:
    found = con.execute(
        "select count(*) from duckdb_tables() where database_name = current_database() "
        "and schema_name = ? and table_name in ('meta', 'derived_batches') and not temporary", [STATE]
    ).fetchall()[0][0]
    if found < 2:
        return None
    return {k: v for k, v in con.execute(f"select key, value from {STATE}.meta").fetchall()}


def write_state(con: duckdb.DuckDBPyConnection, study: Study, as_of: object | None, full: bool) -> None:
    """Record what the tables now hold: the batches derived, the version, the study and the cutoff."""
    meta = {"version": derivation_version(), "study": study_fingerprint(study),
            "as_of": "" if as_of is None else str(as_of)}
    con.execute(f"create or replace table {STATE}.meta (key varchar, value varchar)")
    con.executemany(f"insert into {STATE}.meta values (?, ?)", list(meta.items()))
    if full:
        con.execute(f"create or replace table {STATE}.derived_batches as select distinct batch_id from ingest_batches")
    else:
        con.execute(f"insert into {STATE}.derived_batches select distinct batch_id from recounted_batches")


def _files(paths: Paths, dataset: str, batches: set[str]) -> list[str]:
    pattern, _ = DATASETS[dataset]
    return sorted(str(p) for p in paths.warehouse.resolve().glob(pattern) if p.stem in batches)


def _parquet(files: list[str], dataset: str) -> str:
    schema = DATASETS[dataset][1]
    if not files:
        return empty_select(schema)
    cols = ", ".join(f.name for f in schema)
    listed = ", ".join(sql_literal(f) for f in files)
    return f"select {cols} from read_parquet([{listed}], union_by_name = true, hive_partitioning = false)"


def scoped_sources(con: duckdb.DuckDBPyConnection, paths: Paths, new_batches: tuple[str, ...]) -> Sources | None:
    """The inputs of an incremental derivation; leaves temp table scope_patients. None: derive in full.

    With no new batch the scope is empty: the aggregates are rebuilt from the summaries alone.
    """
    con.execute(sql_text("macros"))
    new = set(new_batches)
    new_events = _parquet(_files(paths, "events", new), "events")
    con.execute(f"create or replace temp table scope_patients as select distinct site_id, patient_id "
                f"from ({new_events}) where patient_id is not null")
    con.execute(f"""create or replace temp table new_site_weeks as
        select distinct site_id, iso_week_start(epoch_us(ingested_at)) as week_start from ({new_events})""")
    ((touched,),) = con.execute("select count(*) from scope_patients").fetchall()
    ((known,),) = con.execute(f"select count(*) from {STATE}.dq_diary_patients").fetchall()
    if touched > max(FULL_SHARE * known, 50):
        return None
    # the site-weeks of the new batches, and every batch already derived that falls in one of them
    redelivered = {b for (b,) in con.execute(f"""
        select distinct b.batch_id from {STATE}.batch_weeks as b
        join new_site_weeks as n
          on n.site_id = b.site_id and n.week_start = b.week_start
    """).fetchall()}
    patients = [p for (p,) in con.execute("select distinct patient_id from scope_patients order by 1").fetchall()]
    in_scope = ("where patient_id in (" + ", ".join(sql_literal(p) for p in patients) + ") "
                "and (site_id, patient_id) in (select site_id, patient_id from scope_patients)") if patients \
        else "where false"
    listed = ", ".join(sql_literal(b) for b in sorted(new))
    return Sources(
        events=f"select {', '.join(EVENT_COLUMNS)} from ({snapshot_sql(paths, 'events')}) {in_scope}",
        batches=dataset_sql(paths, "batches"),
        quarantine=_parquet(_files(paths, "quarantine", new), "quarantine"),
        delivered=_parquet(_files(paths, "events", new | redelivered), "events"),
        recounted=f"select * from ({dataset_sql(paths, 'batches')}) where batch_id in ({listed})",
        small=True,
    )
