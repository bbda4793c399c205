"""Red flags in the simulated study are rare and deliberate, seen through the real SAP §6 derivations.

The written files of a simulated study are loaded as the stored event layout (EVENT_SCHEMA, the
layout ingest writes; clean data is accepted whole, see test_simulate.py) and derived with
pipeline.derive.build.build_tables, the code `trialpipe derive` runs. Ingest itself is skipped: it
takes ~25 s per 1,000 patients and changes nothing in clean data.

Red flags come only from the simulator's explicit red-flag process (~3 % incident, ~0.6 % prevalent
patients; docs/simulator.md), never from noise: paresthesia recovers monotonically, muscle grades never
fall, treatment flares raise leg pain only.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipeline.config import load_study
from pipeline.derive.build import FLAGS, Sources, build_tables
from pipeline.schema import EVENT_SCHEMA
from pipeline.simulate import SimulationOptions, simulate_study
from pipeline.store.warehouse import duck_type

OPTIONS = SimulationOptions(n_patients=3000, faults=False, formats=("parquet",), files_per_site=1)
#: The clean data of the default `trialpipe demo` (faults draw from their own stream: same clean events).
DEMO = SimulationOptions(faults=False, formats=("parquet",), files_per_site=1)
DERIVED_ONLY = ("BILATERAL", "MOTOR", "PARESTHESIA_SPREAD")

def derive_simulated(root: Path, options: SimulationOptions) -> duckdb.DuckDBPyConnection:
    """Simulate a study of Parquet deliveries under `root` and derive every SAP table from it in memory."""
    result = simulate_study(root / "landing", root / "study.toml", options)
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    sent = set(con.sql(f"select * from read_parquet('{result.landing}/*/*.parquet', union_by_name = true) limit 0")
               .columns)
    lineage = {"batch_id": "'sim-' || site_id", "ingested_at": "timestamptz '2026-06-01 00:00:00+00'",
               "warnings": "[]", "schema_version": "1"}
    columns = []
    for f in EVENT_SCHEMA:
        value = f.name if f.name in sent else lineage.get(f.name, "null")
        columns.append(f"cast({value} as {duck_type(f.type)}) as {f.name}")
    con.execute(f"create table events_log as select {', '.join(columns)} "
                f"from read_parquet('{result.landing}/*/*.parquet', union_by_name = true)")
    build_tables(con, load_study(result.study_path), Sources(events="select * from events_log"))
    return con


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> float:
    ((value,),) = con.sql(sql).fetchall()
    return float(value)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    return derive_simulated(tmp_path_factory.mktemp("red_flags"), OPTIONS)


def flagged_share(con: duckdb.DuckDBPyConnection, where: str = "true") -> float:
    return scalar(con, f"select count(distinct patient_id) from red_flag_occurrences where {where}") \
        / scalar(con, "select count(*) from patients")


@pytest.mark.slow
def test_few_patients_have_a_red_flag_but_some_do(study: duckdb.DuckDBPyConnection) -> None:
    assert scalar(study, "select count(*) from patients") == OPTIONS.n_patients
    assert 0.01 <= flagged_share(study) <= 0.05
    for flag in FLAGS:
        assert flagged_share(study, f"flag = '{flag}'") <= 0.02, flag
    # the rare deliberate episodes: a progressive motor deficit, a rapidly spreading paresthesia
    assert 0 < flagged_share(study, "flag = 'MOTOR'") <= 0.015
    assert 0 < flagged_share(study, "flag = 'PARESTHESIA_SPREAD'") <= 0.01


@pytest.mark.slow
def test_both_alert_paths_are_exercised(study: duckdb.DuckDBPyConnection) -> None:
    """Ingest-time (red_flag events, diary booleans) and derive-time (derived-only) flags both occur."""
    assert scalar(study, "select count(*) from red_flag_events where not derived_only") > 0
    assert scalar(study, "select count(*) from red_flag_events where derived_only") > 0
    assert scalar(study, "select count(*) from observations where event_type = 'red_flag'") > 0
    derived = {f for (f,) in study.sql("select distinct flag from red_flag_events where derived_only").fetchall()}
    assert derived <= set(DERIVED_ONLY)


@pytest.mark.slow
def test_paresthesia_and_muscle_grades_do_not_worsen_by_noise(study: duckdb.DuckDBPyConnection) -> None:
    n = OPTIONS.n_patients
    # paresthesia only spreads (or comes back) in a deliberate spread episode
    spreading = scalar(study, """
        select count(distinct patient_key) from observations
        where event_type = 'symptom_report' and paresthesia_extent > previous_report.paresthesia_extent
    """)
    assert spreading <= 0.005 * n
    # a muscle grade only falls in a deliberate progressive motor deficit
    weakening = scalar(study, """
        with grades as (
            select patient_key, dfmrc, pfmrc,
                   lag(dfmrc ignore nulls) over w as previous_df, lag(pfmrc ignore nulls) over w as previous_pf
            from observations where event_type = 'assessment'
            window w as (partition by patient_key order by seq)
        )
        select count(distinct patient_key) from grades where dfmrc < previous_df or pfmrc < previous_pf
    """)
    assert weakening <= 0.015 * n


@pytest.mark.slow
def test_treatment_flares_remain_without_red_flags(study: duckdb.DuckDBPyConnection) -> None:
    flares = scalar(study, """
        select count(*) from treatment_flares
        where modality = 'dry_needling' and classification in ('expected_flare', 'prolonged_flare')
    """)
    assert flares >= 50
    assert flagged_share(study, "flag = 'PARESTHESIA_SPREAD'") <= 0.01


def test_the_default_demo_shows_both_kinds_of_red_flag(tmp_path: Path) -> None:
    """`trialpipe demo` (seed 2007, 120 patients) raises ingest-time and derive-time red-flag alerts, but few."""
    con = derive_simulated(tmp_path, DEMO)
    assert DEMO.seed == SimulationOptions().seed and DEMO.n_patients == SimulationOptions().n_patients
    assert scalar(con, "select count(*) from red_flag_events where not derived_only") > 0
    assert scalar(con, "select count(*) from red_flag_events where derived_only") > 0
    assert 0 < flagged_share(con) <= 0.06
