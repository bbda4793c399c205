"""
# derive_outcomes

Runs whenever `ingest_sites` announces a new state of the event log (Asset
`trialpipe_event_log`): rebuilds every derived table of the SAP in
`trial.duckdb` from the event log, and raises the red-flag alerts that only
derivation can see (motor decline, new bilateral symptoms, paresthesia spread).

| task | calls |
|---|---|
| `derive_tables` | `pipeline.derive.api.derive(paths, study)` |

Asset events that the scheduler finds together are folded into one run, and
runs never overlap (`max_active_runs=1`); each rebuilds from the whole log.

**Retries are safe.** The derived tables are a projection of the append-only
log: a rebuild replaces them whole, and derive-time alerts are kept one per
(event_id, flag).

**One writer.** The task runs in the pool `trialpipe_writer` (1 slot) and
derive writes under `writer_lock`.

On success it emits the Asset `trialpipe_derived_tables`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset, dag, task

EVENT_LOG = Asset(name="trialpipe_event_log", uri="x-trialpipe://warehouse/events")
DERIVED_TABLES = Asset(name="trialpipe_derived_tables", uri="x-trialpipe://warehouse/trial.duckdb")
WRITER_POOL = "trialpipe_writer"
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "trialpipe",
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=2),
}


@dag(
    dag_id="derive_outcomes",
    schedule=[EVENT_LOG],
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["trialpipe", "derive"],
    doc_md=__doc__,
)
def derive_outcomes() -> None:
    @task(pool=WRITER_POOL, outlets=[DERIVED_TABLES])
    def derive_tables() -> str:
        """Rebuild the SAP tables from the event log."""
        from pipeline.config import load_study, paths_from_env
        from pipeline.derive.api import derive

        paths = paths_from_env()
        return derive(paths, load_study(paths.study)).describe()

    derive_tables()


derive_outcomes()
