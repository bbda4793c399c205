"""Airflow for the DAG tests: a throw-away AIRFLOW_HOME with a SQLite metadata DB, set before Airflow loads.

Airflow reads AIRFLOW_HOME and its configuration when it is first imported, so the environment is
set here, at collection, before any test module imports it. Nothing of Airflow is mocked.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent

if "airflow" in sys.modules:  # too late to point Airflow at a temporary home
    raise RuntimeError("tests/dags must be set up before anything imports airflow")

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="trialpipe-airflow-"))
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)
AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
}
os.environ.update(AIRFLOW_ENV)
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"


def airflow_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run the `airflow` command of this environment; its output, or a failure with it."""
    done = subprocess.run([str(BIN / "airflow"), *args], env=env or os.environ.copy(), capture_output=True,
                          text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        pytest.fail(f"airflow {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """The session's metadata DB, migrated once, with the pools of deploy/pools.json."""
    airflow_cli("db", "migrate")
    airflow_cli("pools", "import", str(DEPLOY / "pools.json"))
    from airflow import settings

    settings.configure_orm()
    yield AIRFLOW_HOME
