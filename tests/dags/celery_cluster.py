"""Airflow on the CeleryExecutor, on loopback: PostgreSQL and Redis from Debian's packages, two workers.

What docker-compose.yml runs, on one machine and with free ports: the metadata DB and Celery result
backend on PostgreSQL, Redis as the broker, the api-server, scheduler and dag-processor, and two
`airflow celery worker` processes with their own host names. `COMMANDS`, `SAME_VALUES`, `DIFFERENT`
and `TEST_ONLY` say how its settings relate to the compose file; tests/dags/test_compose.py holds
the two to that.
"""

from __future__ import annotations

import base64
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POOLS = REPO / "deploy" / "pools.json"

#: docker-compose.yml service -> the `airflow` sub-command it runs, which the test runs too
COMMANDS = {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
            "airflow-dag-processor": "dag-processor", "airflow-worker": "celery worker"}
#: flags the test adds to those commands: every port on loopback (compose publishes only the api-server's)
LOOPBACK_FLAGS = {"api-server": ["--host", "127.0.0.1"], "scheduler": ["--skip-serve-logs"],
                  "celery worker": ["--skip-serve-logs"]}
#: settings with the same value in the test and in docker-compose.yml
SAME_VALUES = {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", "AIRFLOW__CORE__LOAD_EXAMPLES": "false"}
#: settings both set, with a value of the test's own, and why
DIFFERENT = {
    "AIRFLOW__CORE__AUTH_MANAGER": "the image's FAB auth manager keeps user accounts; the test's Airflow has "
                                   "no FAB provider and logs in with the simple auth manager's generated password",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "the test unpauses only the DAGs it drives",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "the health check server listens on every interface; the test "
                                               "binds nothing beyond loopback",
}
#: settings only the test needs: one machine and free ports stand in for several hosts
TEST_ONLY = {"AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__API__HOST", "AIRFLOW__API__PORT",
             "AIRFLOW__API__BASE_URL", "AIRFLOW__API__WORKERS", "AIRFLOW__LOGGING__LOGGING_LEVEL",
             "AIRFLOW__CORE__HOSTNAME_CALLABLE", "AIRFLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT",
             "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL", "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT",
             "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"}
WORKERS = ("worker-a", "worker-b")
WORKER_CONCURRENCY = 1  # one task at a time per worker: each takes its own share of the sites
#: each worker's DuckDB on one thread: the two workers share the machine's cores
WORKER_ENV = {"TRIALPIPE_DUCKDB_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        raise FileNotFoundError("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")
    return found[-1].parent


@dataclass
class Postgres:
    port: int
    root: Path
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/airflow"

    @property
    def result_backend(self) -> str:
        return f"db+postgresql+psycopg2://postgres@127.0.0.1:{self.port}/airflow"

    def run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)


@contextmanager
def postgres() -> Iterator[Postgres]:
    """A throw-away PostgreSQL on 127.0.0.1 and a unix socket in its own folder; as `postgres` when root."""
    bindir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="trialpipe-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        pg = pwd.getpwnam("postgres")
        os.chown(root, pg.pw_uid, pg.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = Postgres(free_port(), root, as_user)
    data = root / "data"
    try:
        server.run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                   "--no-sync")
        opts = (f"-c port={server.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        server.run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "postgres.log"), "-w", "-t", "90",
                   "-o", opts, "start")
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=server.port, user="postgres", dbname="postgres")
        con.autocommit = True
        con.cursor().execute("CREATE DATABASE airflow")
        con.close()
        yield server
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def redis() -> Iterator[str]:
    """A Redis on 127.0.0.1 that keeps nothing on disk; its URL."""
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(exe).exists():
        raise FileNotFoundError("Redis is not installed: apt-get install redis-server (.ci/run does)")
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="trialpipe-redis-"))
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(root), "--protected-mode", "yes"],
                            stdout=open(root / "redis.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (root / "redis.log").read_text()
                time.sleep(0.2)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def cluster_env(home: Path, port: int, db: Postgres, broker: str) -> dict[str, str]:
    """The Airflow settings of every component (compose: x-airflow-common's environment, and the test's own)."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db.url,
        # no async engine: the lock has no asyncpg (the official image has); nothing trialpipe calls needs it
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": "",
        "AIRFLOW__CELERY__RESULT_BACKEND": db.result_backend,
        "AIRFLOW__CELERY__BROKER_URL": broker,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "true",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "false",
        # the test's own
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.dags.worker_hostname.worker_hostname",
        "AIRFLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT": "120",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
    }


@dataclass
class Cluster:
    url: str
    home: Path
    env: dict[str, str]
    logs: dict[str, Path] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def output(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {name}\n{p.read_text(errors='replace')[-tail:]}" for name, p in self.logs.items())

    def check_alive(self) -> None:
        dead = [name for name, p in self.procs.items() if p.poll() is not None]
        assert not dead, f"{dead} exited\n{self.output()}"

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        self.logs[name] = self.home / f"{name}.log"
        with open(self.logs[name], "wb") as out:
            self.procs[name] = subprocess.Popen(args, env={**self.env, **(env or {})}, stdout=out,
                                                stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)

    def stop(self) -> None:
        """SIGTERM to every component (the scheduler first), SIGKILL to the process group of any left."""
        order = sorted(self.procs, key=lambda n: n != "scheduler")
        for name in order:
            if self.procs[name].poll() is None:
                self.procs[name].send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for name in order:
            proc = self.procs[name]
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            with suppress(ProcessLookupError):  # its children (task processes, pool workers): the group we started
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def airflow(bin_dir: Path, *args: str) -> list[str]:
    return [str(bin_dir / "airflow"), *args]


@contextmanager
def celery_cluster(root: Path, bin_dir: Path, extra_env: dict[str, str], startup_s: float = 240) -> Iterator[Cluster]:
    """PostgreSQL, Redis, the metadata DB migrated with the writer pool, then every component; stopped after."""
    with ExitStack() as stack:
        db = stack.enter_context(postgres())
        broker = stack.enter_context(redis())
        port = free_port()
        home = root / "airflow-home"
        (home / "config").mkdir(parents=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        base["PATH"] = f"{bin_dir}{os.pathsep}{base.get('PATH', '')}"
        base["PYTHONPATH"] = str(REPO)  # the workers' hostname_callable (tests.dags.worker_hostname)
        cluster = Cluster(f"http://127.0.0.1:{port}", home, {**base, **cluster_env(home, port, db, broker),
                                                             **extra_env})
        for args in (("db", "migrate"), ("pools", "import", str(POOLS))):
            done = subprocess.run(airflow(bin_dir, *args), env=cluster.env, capture_output=True, text=True,
                                  timeout=300, check=False)
            assert done.returncode == 0, f"airflow {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        try:
            cluster.start("api-server", airflow(bin_dir, "api-server", *LOOPBACK_FLAGS["api-server"], "--port",
                                                str(port)))
            for name in WORKERS:  # before the scheduler: the first queued task must find both workers
                cluster.start(name, airflow(bin_dir, "celery", "worker", *LOOPBACK_FLAGS["celery worker"],
                                            "--celery-hostname", f"{name}@%h"),
                              env={"TRIALPIPE_TEST_WORKER": name, **WORKER_ENV})
            deadline = time.monotonic() + startup_s
            while not all(f"{name}@" in text and " ready." in text
                          for name in WORKERS for text in [cluster.logs[name].read_text(errors="replace")]):
                cluster.check_alive()
                assert time.monotonic() < deadline, f"the Celery workers did not start\n{cluster.output()}"
                time.sleep(1)
            cluster.start("scheduler", airflow(bin_dir, "scheduler", *LOOPBACK_FLAGS["scheduler"]))
            cluster.start("dag-processor", airflow(bin_dir, "dag-processor"))
            yield cluster
        finally:
            cluster.stop()
