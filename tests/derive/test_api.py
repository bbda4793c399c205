"""api.py: `trialpipe derive` into trial.duckdb, as of a cutoff."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import duckdb

from pipeline.config import Paths
from pipeline.derive.api import derive, derive_in_memory
from pipeline.derive.build import TABLES

from .factories import INGESTED, STUDY, at, enroll, ev, report, write_warehouse

LATER = INGESTED + timedelta(days=7)


def first_batch() -> list[dict]:  # type: ignore[type-arg]
    return [enroll(batch_id="b1"), report("r0", at(-1), leg=8, batch_id="b1"),
            report("r1", at(3), leg=6, batch_id="b1")]


def second_batch() -> list[dict]:  # type: ignore[type-arg]
    return [report("r2", at(10), leg=2, batch_id="b2", ingested=LATER),
            ev("x1", "retraction", at(11), target_event_id="r1", batch_id="b2", ingested=LATER)]


def table_rows(con: duckdb.DuckDBPyConnection, table: str) -> list[dict[str, Any]]:
    return sorted(con.sql(f"select * from {table}").to_arrow_table().to_pylist(), key=repr)


def stored(paths: Paths, table: str) -> list[dict[str, Any]]:
    con = duckdb.connect(str(paths.db_path), read_only=True)
    try:
        return table_rows(con, table)
    finally:
        con.close()


def test_derive_builds_every_table_in_trial_duckdb(paths: Paths) -> None:
    write_warehouse(paths.warehouse, first_batch())
    result = derive(paths, STUDY)
    assert set(result.rows) == set(TABLES)
    assert result.rows["trajectory"] == 8  # LEGPAIN, BACKPAIN, EXTENT, PARESTH × weeks 0 and 1
    assert result.describe().splitlines()[1:3] == ["  trajectory: 8 rows", "  patient_week: 2 rows"]
    assert [r["value"] for r in stored(paths, "trajectory") if r["param"] == "LEGPAIN"] == [8.0, 6.0]
    assert len(stored(paths, "trajectory")) == 8  # the count read from weekly_values is the view's


def test_derive_replaces_the_tables_when_the_log_grows(paths: Paths) -> None:
    write_warehouse(paths.warehouse, first_batch())
    derive(paths, STUDY)
    write_warehouse(paths.warehouse, second_batch())
    derive(paths, STUDY)
    legpain = sorted((r["week"], r["value"]) for r in stored(paths, "trajectory") if r["param"] == "LEGPAIN")
    assert legpain == [(0, 8.0), (2, 2.0)]  # r1 retracted, r2 added


def test_as_of_reproduces_the_tables_of_that_moment(paths: Paths) -> None:
    write_warehouse(paths.warehouse, first_batch())
    then = derive_in_memory(paths, STUDY)
    write_warehouse(paths.warehouse, second_batch())
    derive(paths, STUDY, as_of=INGESTED + timedelta(days=1))
    for table in TABLES:
        assert stored(paths, table) == table_rows(then, table), table


def test_as_of_after_the_last_ingestion_equals_no_as_of(paths: Paths) -> None:
    write_warehouse(paths.warehouse, first_batch() + second_batch())
    now = derive_in_memory(paths, STUDY)
    later = derive_in_memory(paths, STUDY, as_of=LATER + timedelta(days=365))
    for table in TABLES:
        assert table_rows(later, table) == table_rows(now, table), table


def test_derive_on_an_empty_warehouse(paths: Paths) -> None:
    result = derive(paths, STUDY)
    assert result.rows["trajectory"] == 0
    assert result.rows["red_flag_incidence"] == 5 * 8  # every stratum and flag, all null
    assert result.rows["recovery_summary"] == 2


def test_derive_reads_only_committed_batches(paths: Paths) -> None:
    write_warehouse(paths.warehouse, first_batch() + second_batch())
    (paths.warehouse / "batches" / "b2.parquet").unlink()  # b2's events are stored, its ledger record is not
    derive(paths, STUDY)
    legpain = sorted((r["week"], r["value"]) for r in stored(paths, "trajectory") if r["param"] == "LEGPAIN")
    assert legpain == [(0, 8.0), (1, 6.0)]  # neither r2 nor the retraction of r1 took part


def test_trajectory_is_a_view_any_client_can_read_also_over_an_older_table(paths: Paths) -> None:
    paths.warehouse.mkdir(parents=True)
    with duckdb.connect(str(paths.db_path)) as con:  # a warehouse derived when trajectory was a table
        con.execute("create table trajectory as select 1 as stale")
    write_warehouse(paths.warehouse, first_batch())
    derive(paths, STUDY)
    with duckdb.connect(str(paths.db_path), read_only=True) as con:
        kinds = con.sql("select table_type from information_schema.tables where table_name = 'trajectory'").fetchall()
        assert kinds == [("VIEW",)]
        assert table_rows(con, "trajectory")[0].keys() >= {"site_id", "patient_id", "param", "baseline"}


def test_trial_duckdb_is_stored_in_a_format_duckdb_1_2_clients_read(paths: Paths) -> None:
    write_warehouse(paths.warehouse, first_batch())
    derive(paths, STUDY)
    with duckdb.connect(str(paths.db_path), read_only=True) as con:
        ((tags,),) = con.sql("select tags from duckdb_databases() where path is not null").fetchall()
    assert tags["storage_version"] == "v1.2.0+"


def test_derive_leaves_duckdb_part_of_the_memory_limit_for_the_rest_of_the_process() -> None:
    from pipeline.derive.api import derive_memory_limit

    assert derive_memory_limit("1GB") == "700MB"
    assert derive_memory_limit("2GiB") == "1503MB"
    assert derive_memory_limit("80%") == "80%"  # not a size: DuckDB reads it as given
