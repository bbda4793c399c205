"""Wiring shared by the trialpipe DAGs: the Assets, the writer pool, the retry policy, the start date.

DAG files import this module at parse time (every 30 s), so it imports nothing but
Airflow's SDK and the standard library; the pipeline itself is imported inside tasks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset

EVENT_LOG = Asset(name="trialpipe_event_log", uri="x-trialpipe://warehouse/events")
DERIVED_TABLES = Asset(name="trialpipe_derived_tables", uri="x-trialpipe://warehouse/trial.duckdb")
WRITER_POOL = "trialpipe_writer"  # 1 slot: one task at a time writes trial.duckdb
START_DATE = datetime(2025, 1, 1, tzinfo=UTC)


def default_args(retry_delay: timedelta = timedelta(minutes=1),
                 execution_timeout: timedelta = timedelta(hours=2)) -> dict[str, Any]:
    """Three retries with exponential back-off: every task is idempotent, so a retry is safe."""
    return {
        "owner": "trialpipe",
        "retries": 3,
        "retry_delay": retry_delay,
        "retry_exponential_backoff": True,
        "execution_timeout": execution_timeout,
    }


def verify_task() -> str:
    """The body of the `verify_log` tasks: `trialpipe verify`, failing the task (no retry) when the log does not hold.

    Derive and report run after it only when it succeeded; a retry would not mend a changed file.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from pipeline.config import paths_from_env
    from pipeline.store.audit import verify

    result = verify(paths_from_env())
    if not result.ok:
        shown = "; ".join(result.problems[:20]) + (f"; and {len(result.problems) - 20} more" if len(
            result.problems) > 20 else "")
        raise AirflowFailException(f"the log does not verify ({len(result.problems)} problem(s)): {shown}")
    return result.describe()
