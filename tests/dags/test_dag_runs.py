"""The DAGs run in-process (`dag.test()`) on a simulated multi-site landing zone (issue 5).

ingest_sites → derive_outcomes → outcome_report must leave the same tables as `trialpipe run` on the
same landing zone, and running the ingest again must change nothing.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from pipeline.config import Paths, load_study
from pipeline.simulate import SimulationOptions, simulate_study
from pipeline.store.warehouse import dataset_sql
from tests.dags.conftest import BIN, DAGS
from tests.smtp_sink import DATA_MANAGER, PHYSICIANS, STUDY_TEAM, SmtpSink, smtp_sink

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

OPTIONS = SimulationOptions(seed=1, n_patients=30, n_sites=3, faults=True, weeks=12, files_per_site=2)
# Columns that name or time a particular ingestion or alerting run: they differ between any two runs.
# The hash chain names the files of one run (batch ids, times): chain_prev and files differ. Its numbers
# (chain_seq) count the records in commit order, which is the DTS order in both: `commit_sites` commits the
# sites in the order `trialpipe ingest` does, also under dag.test().
RUN_COLUMNS = {"batch_id", "run_id", "ingested_at", "raised_at", "generated_at", "chain_prev", "files"}
# Time from recording to ingestion, or from the last delivery to the derivation: the two runs ingest and
# derive the same rows seconds apart, so these agree to within minutes (hours or days, not seconds).
LAG_COLUMNS = {"lag_p50_hours", "lag_p90_hours", "days_since_last_file"}
LOG_DIRS = ("events", "quarantine", "alerts", "batches", "queries")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("study")
    simulate_study(root / "landing", root / "study.toml", OPTIONS)
    return root


def paths_for(study: Path, warehouse: str) -> Paths:
    return Paths(study / "study.toml", study / "landing", study / warehouse)


def load_dag(dag_id: str) -> Any:
    """A freshly parsed DAG: dag.test() runs tasks in this process and leaves a run's conf in their params."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / f"{dag_id}.py"))
    assert bag.import_errors == {}
    dag = bag.dags[dag_id]
    for task in dag.tasks:  # a failure fails the test at once instead of waiting out the retry delays
        task.retries = 0
    return dag


def run_dag(dag_id: str, paths: Paths, expect: str | None = "success", **kwargs: Any) -> dict[tuple[str, int], Any]:
    """dag.test() with the deployment's paths in the environment; {(task_id, map_index): task instance}."""
    from airflow.utils.session import create_session

    with pytest.MonkeyPatch.context() as env:
        env.setenv("TRIALPIPE_STUDY", str(paths.study))
        env.setenv("TRIALPIPE_LANDING", str(paths.landing))
        env.setenv("TRIALPIPE_WAREHOUSE", str(paths.warehouse))
        run = load_dag(dag_id).test(**kwargs)
    with create_session() as session:
        tis = {(ti.task_id, ti.map_index): ti for ti in run.get_task_instances(session=session)}
        states = {key: ti.state for key, ti in tis.items()}
        if expect is not None:
            assert run.get_state() == expect, f"{dag_id}: {states}"
    return tis


def site_tasks(tis: dict[tuple[str, int], Any]) -> list[str]:
    return sorted(ti.rendered_map_index for (task, _), ti in tis.items() if task == "stage_site")


@pytest.fixture(scope="module")
def cli_run(study: Path) -> Iterator[tuple[Paths, subprocess.Popen[bytes]]]:
    """`trialpipe run` into its own warehouse, in the background while the DAGs run."""
    paths = paths_for(study, "cli-warehouse")
    proc = subprocess.Popen([str(BIN / "trialpipe"), "run", "--study", str(paths.study), "--landing",
                             str(paths.landing), "--warehouse", str(paths.warehouse)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    yield paths, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def cli_warehouse(cli_run: tuple[Paths, subprocess.Popen[bytes]]) -> Paths:
    paths, proc = cli_run
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output.decode(errors="replace")
    return paths


@pytest.fixture(scope="module")
def mail() -> Iterator[SmtpSink]:
    """The red-flag mail goes to an SMTP sink on loopback (unconfigured, notify_red_flags fails the run)."""
    with smtp_sink() as sink, pytest.MonkeyPatch.context() as env:
        for name, value in sink.env().items():
            env.setenv(name, value)
        yield sink


@pytest.fixture(scope="module")
def dag_warehouse(study: Path, airflow_db: Path, cli_run: Any, mail: SmtpSink) -> Iterator[Paths]:
    paths = paths_for(study, "dag-warehouse")
    folders = sorted(p.name for p in paths.landing.iterdir())  # the simulated sites and an unregistered one
    assert len(folders) > len(OPTIONS.site_ids) >= 3
    assert site_tasks(run_dag("ingest_sites", paths)) == folders  # discovery maps one task per site folder
    run_dag("derive_outcomes", paths)
    run_dag("outcome_report", paths)
    yield paths


def states(tis: dict[tuple[str, int], Any]) -> dict[tuple[str, int], str]:
    return {key: ti.state for key, ti in tis.items()}


def tables(paths: Paths) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(paths.db_path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        # the schema main: the derived tables and views (derive_state holds derive's bookkeeping)
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()]
        return {name: con.execute(f'SELECT * FROM "{name}"').df() for name in names}
    finally:
        con.close()


def canonical(value: Any) -> Any:
    """Lists (DuckDB LIST columns arrive as arrays) as tuples, so that rows compare and sort."""
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    return tuple(canonical(v) for v in value) if isinstance(value, list | tuple) else value


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Without the columns of a particular run, rows in a canonical order."""
    frame = frame.drop(columns=[c for c in frame.columns if c in RUN_COLUMNS])
    for col in frame.select_dtypes(include="object").columns:
        frame[col] = frame[col].map(canonical)
    keys = [c for c in frame.columns if c not in LAG_COLUMNS]
    order = frame[keys].apply(lambda row: "\x1f".join(map(repr, row)), axis=1).sort_values().index
    return frame.loc[order].reset_index(drop=True)


def test_dag_runs_build_the_same_tables_as_trialpipe_run(cli_warehouse: Paths, dag_warehouse: Paths) -> None:
    expected, got = tables(cli_warehouse), tables(dag_warehouse)
    assert sorted(got) == sorted(expected)
    assert {"events", "quarantine", "alerts", "trajectory", "recovery_summary", "dq_site_week"} <= set(got)
    for name in expected:
        want, have = comparable(expected[name]), comparable(got[name])
        assert len(have) == len(want), name
        lags = [c for c in want.columns if c in LAG_COLUMNS]
        pd.testing.assert_frame_equal(have.drop(columns=lags), want.drop(columns=lags), obj=name)
        for col in lags:  # recorded → ingested, in hours: equal up to the seconds between the two runs
            assert ((have[col] - want[col]).abs().fillna(0) < 0.1).all(), f"{name}.{col}"
    assert len(got["events"]) > 0 and len(got["quarantine"]) > 0


def test_every_alert_of_the_dag_runs_was_mailed(dag_warehouse: Paths, mail: SmtpSink) -> None:
    from pipeline.notify import notified_ids, pending_alerts

    assert pending_alerts(dag_warehouse) == []
    alerts = duckdb.connect().execute(f"SELECT alert_id FROM ({dataset_sql(dag_warehouse, 'alerts')})").fetchall()
    assert alerts and notified_ids(dag_warehouse) == {r[0] for r in alerts}
    red = [m for m in mail.messages if "red-flag alert(s)" in m.subject]
    assert red and all(m.rcpt_to == PHYSICIANS.split(",") for m in red)
    # the other messages went to the study team (the weekly report) and the data manager (flags), not to them
    assert all(m.rcpt_to in ([STUDY_TEAM], [DATA_MANAGER]) for m in mail.messages if m not in red)


def test_outcome_report_mails_the_study_team_once(dag_warehouse: Paths, mail: SmtpSink) -> None:
    (report,) = mail.to(STUDY_TEAM)
    assert report.subject.startswith("trialpipe: weekly report ")
    assert set(report.attachments()) in ({"outcome_report.pdf", "dq_dashboard.pdf"},
                                         {"outcome_report.html", "dq_dashboard.html"})
    assert "Patients enrolled, by arm:" in report.body


def test_outcome_report_writes_the_reports_and_the_query_lists(dag_warehouse: Paths) -> None:
    assert any(dag_warehouse.reports_dir.glob("*.html"))
    assert {p.name for p in dag_warehouse.queries_dir.iterdir()} >= set(OPTIONS.site_ids)
    outbox = dag_warehouse.study.parent / "outbox"  # each registered site's own folder, nothing else
    assert {p.name for p in outbox.iterdir()} == set(OPTIONS.site_ids)


def snapshot(paths: Paths) -> dict[str, str]:
    """SHA-256 of every file of the event log, quarantine, alert log, ledger and query lists."""
    return {str(p.relative_to(paths.warehouse)): hashlib.sha256(p.read_bytes()).hexdigest()
            for d in LOG_DIRS for p in sorted((paths.warehouse / d).rglob("*")) if p.is_file()}


def test_rerunning_a_successful_ingest_changes_nothing(dag_warehouse: Paths) -> None:
    before = snapshot(dag_warehouse)
    assert any(k.startswith("events/") for k in before) and any(k.startswith("alerts/") for k in before)
    folders = sorted(p.name for p in dag_warehouse.landing.iterdir())
    # one run with a task for every site, as after a retry or a cleared run; then a plain run
    assert site_tasks(run_dag("ingest_sites", dag_warehouse, run_conf={"sites": folders})) == folders
    assert snapshot(dag_warehouse) == before
    again = states(run_dag("ingest_sites", dag_warehouse))
    # nothing new: no site task runs, no asset event is emitted
    assert [key for key, state in again.items() if key[0] in ("stage_site", "commit_sites")
            and state != "skipped"] == [], again
    assert again[("announce_event_log", -1)] == "skipped", again
    assert snapshot(dag_warehouse) == before


def test_dq_monitor_flags_exactly_what_the_check_finds(dag_warehouse: Paths, mail: SmtpSink) -> None:
    from pipeline.report.dq import dq_monitor

    tis = run_dag("dq_monitor", dag_warehouse, expect=None)
    assert tis[("check_sites", -1)].state == "success"
    flagged = not dq_monitor(dag_warehouse, load_study(dag_warehouse.study)).ok
    assert tis[("flag_sites", -1)].state == ("failed" if flagged else "success")
    assert tis[("flag_sites", -1)].try_number == 1
    assert tis[("mail_data_manager", -1)].state == "success"
    assert bool(mail.to(DATA_MANAGER)) == flagged  # the data manager hears of a flagged site
