"""`ingest_sites` on the real distributed engine: CeleryExecutor, PostgreSQL, Redis and two workers (issue 11).

tests/dags/celery_cluster.py starts, on loopback and free ports, PostgreSQL and Redis from Debian's
packages and Airflow on them (api-server, scheduler, dag-processor, two `airflow celery worker`s with
their own host names). The test lands a multi-site study, triggers `ingest_sites` and waits for the
`derive_outcomes` run its Asset event schedules. It checks that the event log, quarantine, alerts and
ledger equal what `trialpipe ingest` stores from the same landing zone (the ledger's commit numbers
too); that the site staging tasks ran on both workers at overlapping times, and the one commit task
after every staging, committing the sites in site order; and that a rerun changes no byte.

Skipped locally unless TRIALPIPE_SCHEDULER_TESTS=1; CI (CI=true) runs it (.ci/run installs the packages).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import httpx
import pandas as pd
import pytest

from pipeline.config import Paths
from pipeline.ingest.run import airflow_run_id
from pipeline.ingest.staging_area import dts_order
from pipeline.simulate import SimulationOptions, simulate_study
from pipeline.store.warehouse import dataset_sql, writer_lock
from tests.dags.celery_cluster import WORKERS, Cluster, celery_cluster
from tests.dags.conftest import BIN
from tests.dags.test_dag_runs import comparable, snapshot
from tests.smtp_sink import SmtpSink, smtp_sink

ENABLED = os.environ.get("CI", "").lower() == "true" or os.environ.get("TRIALPIPE_SCHEDULER_TESTS") == "1"
pytestmark = [
    pytest.mark.scheduler,
    pytest.mark.slow,
    pytest.mark.skipif(not ENABLED, reason="drives a Celery cluster: set TRIALPIPE_SCHEDULER_TESTS=1 (CI runs it)"),
    pytest.mark.timeout(1500),
]

# three sites with faults (rejected rows and files, red flags, an unregistered folder): four staging tasks
OPTIONS = SimulationOptions(seed=11, n_patients=30, n_sites=3, faults=True, weeks=8, files_per_site=1)
STARTUP_S = 300
RUN_S = 600  # on a quiet machine a run takes well under a minute


@dataclass
class Deployment:
    cluster: Cluster
    paths: Paths
    cli: Paths
    folders: list[str]
    client: httpx.Client

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.client.request(method, f"{self.cluster.url}/api/v2{path}", **kwargs)
        assert resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text}\n{self.cluster.output()}"
        return resp.json()

    def wait(self, what: str, seconds: float, probe: Any) -> Any:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.cluster.check_alive()
            if (found := probe()) is not None:
                return found
            time.sleep(1)
        pytest.fail(f"timed out waiting for {what}\n{self.cluster.output()}")

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"])

    def all_finished(self, dag_id: str, at_least: int = 1) -> list[dict[str, Any]] | None:
        """Every run of the DAG once none is queued or running (and there are that many); none may fail."""
        runs = self.runs(dag_id)
        if len(runs) < at_least or any(r["state"] not in ("success", "failed") for r in runs):
            return None
        failed = [r["dag_run_id"] for r in runs if r["state"] == "failed"]
        assert not failed, f"{dag_id} runs failed: {failed}\n{self.cluster.output()}"
        return runs

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                             params={"limit": 100})["task_instances"])


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    """The red-flag mail goes here (unconfigured, notify_red_flags would fail the run)."""
    with smtp_sink() as s:
        yield s


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, sink: SmtpSink) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("celery")
    paths = Paths(root / "study.toml", root / "landing", root / "warehouse")
    simulate_study(paths.landing, paths.study, OPTIONS)
    folders = sorted(p.name for p in paths.landing.iterdir())
    assert len(folders) > len(OPTIONS.site_ids) >= 3  # the sites and an unregistered folder
    cli = Paths(paths.study, paths.landing, root / "cli-warehouse")
    # `trialpipe ingest` on the same landing zone, while the cluster starts
    reference = subprocess.Popen([str(BIN / "trialpipe"), "ingest", "--study", str(cli.study), "--landing",
                                  str(cli.landing), "--warehouse", str(cli.warehouse)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    env = {"TRIALPIPE_STUDY": str(paths.study), "TRIALPIPE_LANDING": str(paths.landing),
           "TRIALPIPE_WAREHOUSE": str(paths.warehouse), **sink.env()}
    try:
        with celery_cluster(root, BIN, env, STARTUP_S) as cluster:
            passwords = cluster.home / "simple_auth_manager_passwords.json.generated"
            deadline = time.monotonic() + STARTUP_S
            token = None
            while token is None:
                cluster.check_alive()
                assert time.monotonic() < deadline, f"the api-server did not start\n{cluster.output()}"
                try:
                    password = json.loads(passwords.read_text())["admin"]
                    got = httpx.post(f"{cluster.url}/auth/token", json={"username": "admin", "password": password})
                    token = got.json()["access_token"] if got.status_code < 300 else None
                except (OSError, ValueError, KeyError, httpx.HTTPError):
                    pass
                if token is None:
                    time.sleep(1)
            output, _ = reference.communicate(timeout=300)
            assert reference.returncode == 0, output.decode(errors="replace")
            with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
                yield Deployment(cluster, paths, cli, folders, client)
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.wait()


@pytest.fixture(scope="module")
def ingested(deployment: Deployment) -> str:
    """Trigger ingest_sites, wait for it and for derive_outcomes; the run id of the run that ingested."""
    dep = deployment

    def parsed() -> bool | None:
        got = dep.client.get(f"{dep.cluster.url}/api/v2/dags/ingest_sites")
        return True if got.status_code == 200 else None

    dep.wait("the DAG files to be parsed", STARTUP_S, parsed)
    for dag_id in ("ingest_sites", "derive_outcomes"):
        dep.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    run = dep.api("POST", "/dags/ingest_sites/dagRuns", json={"logical_date": None, "conf": {"sites": dep.folders}})
    dep.wait("ingest_sites", RUN_S, lambda: dep.all_finished("ingest_sites"))
    assert run["dag_run_id"] in {r["dag_run_id"] for r in dep.runs("ingest_sites")}
    dep.wait("derive_outcomes, scheduled by the event-log Asset", RUN_S, lambda: dep.all_finished("derive_outcomes"))
    # unpausing may also have started a scheduled run, which then ingested first: the ledger says which run did
    ledger = duckdb.connect().execute(f"SELECT DISTINCT run_id FROM ({dataset_sql(dep.paths, 'batches')})")
    (ingest_run,) = [row[0] for row in ledger.fetchall()]
    (dag_run,) = [r["dag_run_id"] for r in dep.runs("ingest_sites") if airflow_run_id(r["dag_run_id"]) == ingest_run]
    return str(dag_run)


def stored(paths: Paths, name: str) -> pd.DataFrame:
    where = " WHERE source = 'ingest'" if name == "alerts" else ""  # derive_outcomes adds its own (the CLI ran none)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con.execute(f"SELECT * FROM ({dataset_sql(paths, name)}){where}").df()


def stores_what_trialpipe_ingest_stores(deployment: Deployment) -> None:
    for name in ("events", "quarantine", "alerts", "batches"):
        want, have = comparable(stored(deployment.cli, name)), comparable(stored(deployment.paths, name))
        assert len(want) > 0, name
        pd.testing.assert_frame_equal(have, want, obj=name)
    with writer_lock(deployment.paths):  # derive_outcomes built the derived tables from that log
        db = duckdb.connect(str(deployment.paths.db_path), read_only=True)
        try:
            assert db.execute("SELECT count(*) FROM trajectory").fetchone() != (0,)
        finally:
            db.close()


def _interval(ti: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(ti["start_date"]), datetime.fromisoformat(ti["end_date"])


def stages_on_both_workers_at_once_then_commits_every_site_in_site_order(deployment: Deployment,
                                                                         ingested: str) -> None:
    tis = deployment.task_instances("ingest_sites", ingested)
    stages = [ti for ti in tis if ti["task_id"] == "stage_site"]
    (commit,) = [ti for ti in tis if ti["task_id"] == "commit_sites"]
    assert sorted(ti["rendered_map_index"] for ti in stages) == deployment.folders
    assert all(ti["state"] == "success" for ti in [*stages, commit]), [(t["task_id"], t["state"]) for t in tis]
    assert {ti["hostname"] for ti in stages} == set(WORKERS), [(t["rendered_map_index"], t["hostname"]) for t in stages]
    overlapping = [(a["rendered_map_index"], b["rendered_map_index"]) for a in stages for b in stages
                   if a["hostname"] < b["hostname"] and _interval(a)[0] < _interval(b)[1]
                   and _interval(b)[0] < _interval(a)[1]]
    assert overlapping, [(t["rendered_map_index"], t["hostname"], t["start_date"], t["end_date"]) for t in stages]
    # the writer: one task after every staging, committing the sites one after the other in DTS order
    assert _interval(commit)[0] >= max(_interval(ti)[1] for ti in stages)
    con = duckdb.connect()
    order = con.execute(f"SELECT site_id, source_file FROM ({dataset_sql(deployment.paths, 'batches')}) "
                        "ORDER BY chain_seq").fetchall()
    assert [f for _, f in order] == sorted(f for _, f in order)  # files in the order of their paths (DTS §5)
    assert list(dict.fromkeys(site for site, _ in order)) == sorted(deployment.folders, key=dts_order)
    assert not any(deployment.paths.staging_dir.iterdir())  # nothing left staged


def a_rerun_changes_nothing(deployment: Deployment) -> None:
    dep = deployment
    dep.api("PATCH", "/dags/derive_outcomes", json={"is_paused": True})  # it adds derived alerts of its own
    dep.wait("derive_outcomes to finish", RUN_S, lambda: dep.all_finished("derive_outcomes"))
    before = snapshot(dep.paths)
    assert any(k.startswith("events/") for k in before) and any(k.startswith("alerts/") for k in before)
    known = len(dep.runs("ingest_sites"))
    again = dep.api("POST", "/dags/ingest_sites/dagRuns", json={"logical_date": None, "conf": {"sites": dep.folders}})
    dep.wait("the rerun of ingest_sites", RUN_S, lambda: dep.all_finished("ingest_sites", known + 1))
    tis = {(ti["task_id"], ti["rendered_map_index"] or ti["map_index"]): ti["state"]
           for ti in dep.task_instances("ingest_sites", again["dag_run_id"])}
    assert sorted(site for task, site in tis if task == "stage_site") == dep.folders
    assert tis[("commit_sites", -1)] == "success", tis
    assert tis[("announce_event_log", -1)] == "skipped", tis  # nothing stored: no Asset event, no derivation
    assert snapshot(dep.paths) == before


def test_ingest_sites_on_two_celery_workers(deployment: Deployment, ingested: str) -> None:
    """One test, so that one cluster starts however pytest-xdist distributes the tests."""
    stores_what_trialpipe_ingest_stores(deployment)
    stages_on_both_workers_at_once_then_commits_every_site_in_site_order(deployment, ingested)
    a_rerun_changes_nothing(deployment)
