"""The DAG files parse, and every DAG carries its tags, docs, retries and writer pool (issue 5)."""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest

from tests.dags.conftest import DAGS, DEPLOY

DAG_IDS = {"ingest_sites", "derive_outcomes", "outcome_report", "dq_monitor"}
WRITER_POOL = "trialpipe_writer"
# Tasks that open trial.duckdb (DuckDB: one process at a time while one writes) share the 1-slot pool;
# staging (stage_site) writes only its own staging area and runs outside it, on every worker at once.
WRITERS = {
    ("ingest_sites", "commit_sites"),
    ("derive_outcomes", "derive_tables"),
    ("outcome_report", "write_outcome_report"),
    ("outcome_report", "write_query_lists"),
    ("outcome_report", "mail_reports"),
}


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    pools = set(json.loads((DEPLOY / "pools.json").read_text()))
    return DagBag(dag_folder=str(DAGS), known_pools={"default_pool", *pools})


def test_dag_files_import_without_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == DAG_IDS


def test_every_dag_has_tags_and_docs(dagbag: Any) -> None:
    for dag in dagbag.dags.values():
        assert "trialpipe" in dag.tags, dag.dag_id
        assert dag.doc_md and dag.doc_md.strip().startswith(f"# {dag.dag_id}"), dag.dag_id


def test_every_task_retries_at_least_twice(dagbag: Any) -> None:
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag.dag_id}.{task.task_id}"


def test_tasks_that_open_the_warehouse_share_the_one_slot_writer_pool(dagbag: Any) -> None:
    in_pool = {(dag.dag_id, t.task_id) for dag in dagbag.dags.values() for t in dag.tasks if t.pool == WRITER_POOL}
    assert in_pool == WRITERS
    assert json.loads((DEPLOY / "pools.json").read_text())[WRITER_POOL]["slots"] == 1


def test_ingest_maps_a_staging_task_per_site_then_commits_them_in_one_task_and_announces_the_event_log(
        dagbag: Any) -> None:
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    dag = dagbag.dags["ingest_sites"]
    assert isinstance(dag.get_task("stage_site"), MappedOperator)
    assert not isinstance(dag.get_task("commit_sites"), MappedOperator)  # one process commits every site
    assert dag.get_task("stage_site").upstream_task_ids == {"find_sites"}
    # the commit waits for every site's staging (then commits them one by one, in DTS order)
    assert dag.get_task("commit_sites").upstream_task_ids == {"stage_site"}
    assert dag.get_task("announce_event_log").upstream_task_ids == {"commit_sites"}
    (event_log,) = dag.get_task("announce_event_log").outlets
    assert event_log.name == "trialpipe_event_log"
    derive = dagbag.dags["derive_outcomes"]
    assert list(derive.timetable.asset_condition.objects) == [event_log]


def test_a_failing_site_blocks_neither_the_announcement_nor_the_red_flag_mail(dagbag: Any) -> None:
    """all_done: run once every site task finished, failed or not; one_failed: the run still turns red."""
    ingest = dagbag.dags["ingest_sites"]
    rules = {t.task_id: t.trigger_rule for t in ingest.tasks if "commit_sites" in t.upstream_task_ids}
    assert rules == {"announce_event_log": "all_done", "notify_red_flags": "all_done", "clear_staging": "all_done",
                     "check_sites_ingested": "one_failed"}
    # a site whose staging failed stops no other; with nothing staged (nothing new) the commit is skipped
    assert ingest.get_task("commit_sites").trigger_rule == "all_done_min_one_success"
    assert ingest.get_task("check_sites_ingested").upstream_task_ids == {"stage_site", "commit_sites"}
    derive = dagbag.dags["derive_outcomes"]
    notify = derive.get_task("notify_red_flags")
    assert notify.upstream_task_ids == {"derive_tables"} and notify.trigger_rule == "all_done"
    assert not notify.downstream_task_ids and not ingest.get_task("notify_red_flags").downstream_task_ids


@pytest.mark.parametrize(("dag_id", "cron"), [
    ("ingest_sites", "*/5 * * * *"),
    ("outcome_report", "0 6 * * 1"),
    ("dq_monitor", "30 5 * * *"),
])
def test_schedules(dagbag: Any, dag_id: str, cron: str) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.schedule == cron
    assert dag.catchup is False
    assert dag.max_active_runs == 1


def test_dag_files_import_the_pipeline_only_inside_tasks() -> None:
    """DAG files are parsed every 30 s: only Airflow and the standard library at the top level (STYLE: DAGs)."""
    for path in sorted(DAGS.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = {node.module or "" for node in tree.body if isinstance(node, ast.ImportFrom)}
        modules |= {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
        allowed = {"__future__", "datetime", "typing", "airflow"}
        assert all(m.split(".")[0] in allowed or m == "pipeline.dag_defaults" for m in modules), path.name


def test_the_mail_tasks_sit_where_a_failed_mail_still_leaves_the_run_red(dagbag: Any) -> None:
    dq = dagbag.dags["dq_monitor"]
    mail, flag = dq.get_task("mail_data_manager"), dq.get_task("flag_sites")
    assert mail.upstream_task_ids == {"check_sites"} and mail.downstream_task_ids == {"flag_sites"}
    assert flag.trigger_rule == "all_done" and flag.upstream_task_ids == {"check_sites", "mail_data_manager"}
    report = dagbag.dags["outcome_report"].get_task("mail_reports")
    assert report.upstream_task_ids == {"write_outcome_report"} and not report.downstream_task_ids


def test_the_log_is_verified_before_derive_and_before_the_report(dagbag: Any) -> None:
    """A log that fails `trialpipe verify` is neither derived from nor reported on (issue 12)."""
    assert dagbag.dags["derive_outcomes"].get_task("derive_tables").upstream_task_ids == {"verify_log"}
    assert dagbag.dags["outcome_report"].get_task("write_outcome_report").upstream_task_ids == {"verify_log"}
