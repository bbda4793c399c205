"""A real scheduler runs the DAGs, started by the one command of "Run it on a schedule" (issue 5).

deploy/airflow-local.sh starts the api-server, scheduler, dag-processor and triggerer (LocalExecutor,
SQLite) on a simulated landing zone; the test triggers `ingest_sites` through the REST API, waits for
it and for the `derive_outcomes` run its Asset event schedules, and checks the event log, the derived
tables, the task log and that nothing listens beyond 127.0.0.1.

Skipped locally unless TRIALPIPE_SCHEDULER_TESTS=1; CI (CI=true) runs it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import httpx
import psutil
import pytest

from pipeline.config import Paths
from pipeline.simulate import SimulationOptions, SimulationResult, simulate_study
from pipeline.store.warehouse import dataset_sql, writer_lock
from tests.dags.conftest import DEPLOY
from tests.smtp_sink import SmtpSink, smtp_sink

ENABLED = os.environ.get("CI", "").lower() == "true" or os.environ.get("TRIALPIPE_SCHEDULER_TESTS") == "1"
pytestmark = [
    pytest.mark.scheduler,
    pytest.mark.slow,
    pytest.mark.skipif(not ENABLED, reason="drives a real scheduler: set TRIALPIPE_SCHEDULER_TESTS=1 (CI runs it)"),
    pytest.mark.timeout(480),
]

OPTIONS = SimulationOptions(seed=3, n_patients=12, n_sites=2, faults=False, weeks=8, files_per_site=1)
STARTUP_S = 180
RUN_S = 240


@dataclass
class LocalAirflow:
    url: str
    home: Path
    paths: Paths
    simulated: SimulationResult
    process: subprocess.Popen[bytes]
    log: Path
    client: httpx.Client | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        assert self.client is not None
        resp = self.client.request(method, f"{self.url}/api/v2{path}", **kwargs)
        assert resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text}\n{self.output()}"
        return resp.json()

    def wait(self, what: str, seconds: float, probe: Any) -> Any:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"airflow-local.sh exited:\n{self.output()}"
            if (found := probe()) is not None:
                return found
            time.sleep(1)
        pytest.fail(f"timed out waiting for {what}\n{self.output()}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    """The red-flag mail goes here (unconfigured, notify_red_flags would fail the run)."""
    with smtp_sink() as s:
        yield s


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory, sink: SmtpSink) -> Iterator[LocalAirflow]:
    root = tmp_path_factory.mktemp("scheduler")
    paths = Paths(root / "study.toml", root / "landing", root / "warehouse")
    simulated = simulate_study(paths.landing, paths.study, OPTIONS)
    port = free_port()
    # this session's Airflow settings (conftest) must not leak into the local Airflow
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(root / "airflow-home"), "AIRFLOW_PORT": str(port),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # only what the test unpauses runs
        "TRIALPIPE_STUDY": str(paths.study), "TRIALPIPE_LANDING": str(paths.landing),
        "TRIALPIPE_WAREHOUSE": str(paths.warehouse), "TRIALPIPE_VENV": str(Path(sys.executable).parent.parent),
        **sink.env(),
    })
    log = root / "airflow-local.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(["bash", str(DEPLOY / "airflow-local.sh")], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    local = LocalAirflow(f"http://127.0.0.1:{port}", root / "airflow-home", paths, simulated, process, log)
    try:
        local.wait("the api-server", STARTUP_S, lambda: True if "Airflow is up" in local.output() else None)
        password = json.loads((local.home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        token = httpx.post(f"{local.url}/auth/token", json={"username": "admin", "password": password}).json()
        local.client = httpx.Client(headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=30)
        yield local
    finally:
        stop(process)
        if local.client is not None:
            local.client.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the script, which stops its components; then SIGKILL to any of them still alive."""
    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=45)
    except subprocess.TimeoutExpired:
        process.kill()
    _, alive = psutil.wait_procs(tree, timeout=15)
    for proc in alive:
        proc.kill()


def dag_run(airflow: LocalAirflow, dag_id: str, run_id: str | None = None) -> dict[str, Any] | None:
    """The run (or the first run of the DAG) once it is finished; fails the test if it failed."""
    runs = airflow.api("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"]
    for run in runs:
        if run_id in (None, run["dag_run_id"]) and run["state"] in ("success", "failed"):
            assert run["state"] == "success", f"{dag_id} {run['dag_run_id']} failed\n{airflow.output()}"
            return dict(run)
    return None


def test_a_triggered_ingest_run_fills_the_event_log_and_schedules_derive(airflow: LocalAirflow) -> None:
    def parsed() -> bool | None:
        assert airflow.client is not None
        got = airflow.client.get(f"{airflow.url}/api/v2/dags/ingest_sites")
        return True if got.status_code == 200 else None

    airflow.wait("the DAG files to be parsed", STARTUP_S, parsed)
    for dag_id in ("ingest_sites", "derive_outcomes"):
        airflow.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    sites = sorted(OPTIONS.site_ids)
    run = airflow.api("POST", "/dags/ingest_sites/dagRuns", json={"logical_date": None, "conf": {"sites": sites}})
    airflow.wait("ingest_sites", RUN_S, lambda: dag_run(airflow, "ingest_sites", run["dag_run_id"]))

    con = duckdb.connect()
    events = con.execute(f"SELECT site_id, count(*) FROM ({dataset_sql(airflow.paths, 'events')}) GROUP BY ALL")
    per_site = dict(events.fetchall())
    assert sorted(per_site) == sites
    assert sum(per_site.values()) == airflow.simulated.n_events

    tis = airflow.api("GET", f"/dags/ingest_sites/dagRuns/{run['dag_run_id']}/taskInstances")["task_instances"]
    mapped = sorted(ti["rendered_map_index"] for ti in tis if ti["task_id"] == "stage_site")
    assert mapped == sites
    log = airflow.api("GET", f"/dags/ingest_sites/dagRuns/{run['dag_run_id']}/taskInstances/commit_sites/logs/1",
                      params={"full_content": True})
    # the UI reads task logs without a log server; every site's summary is there, in site order (new files,
    # or "nothing new" when the scheduled run that unpausing creates took them first)
    printed = [line["event"] for line in log["content"] if line.get("logger") == "task.stdout"]
    assert [line for line in printed if line.startswith("committed ")] == [f"committed {s}:" for s in sites], log
    assert sum(line.startswith("ingest") for line in printed) == len(sites), log

    airflow.wait("derive_outcomes, scheduled by the event-log Asset", RUN_S,
                 lambda: dag_run(airflow, "derive_outcomes"))
    with writer_lock(airflow.paths):  # a later run's task may be writing: DuckDB would refuse to open the file
        db = duckdb.connect(str(airflow.paths.db_path), read_only=True)
        try:
            assert db.execute("SELECT count(*) FROM trajectory").fetchone() != (0,)
        finally:
            db.close()


def test_nothing_listens_beyond_loopback(airflow: LocalAirflow) -> None:
    listening = []
    for p in psutil.Process(airflow.process.pid).children(recursive=True):
        try:  # task subprocesses come and go while we look
            listening += [(p.name(), c.laddr) for c in p.net_connections(kind="inet")
                          if c.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            continue
    assert listening, "the api-server listens"
    assert all(addr.ip in ("127.0.0.1", "::1") for _, addr in listening), listening
