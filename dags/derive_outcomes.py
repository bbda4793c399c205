"""
# derive_outcomes

Runs whenever `ingest_sites` announces a new state of the event log (Asset
`trialpipe_event_log`): rebuilds every derived table of the SAP in
`trial.duckdb` from the event log, and raises the red-flag alerts that only
derivation can see (motor decline, new bilateral symptoms, paresthesia spread).

| task | calls |
|---|---|
| `verify_log` | `pipeline.store.audit.verify(paths)`: re-hashes the log against its hash chain (`trialpipe verify`) |
| `derive_tables` | `pipeline.derive.api.derive(paths, study)` |
| `notify_red_flags` | `pipeline.notify.notify_red_flags(paths, study)`: mails every alert not yet notified |

`derive_tables` runs only when `verify_log` succeeded: a log that fails
verification is not derived from (docs/audit.md).
`notify_red_flags` runs after `derive_tables` whether it succeeded or not
(`trigger_rule="all_done"`), and fails when alerts are pending and no recipient
or SMTP host is configured.

Asset events that the scheduler finds together are folded into one run, and
runs never overlap (`max_active_runs=1`); each rebuilds from the whole log.

**Retries are safe.** The derived tables are a projection of the append-only
log: a rebuild replaces them whole, and derive-time alerts are kept one per
(site, patient, event_id, flag).

**One writer.** The task runs in the pool `trialpipe_writer` (1 slot) and
derive writes under `writer_lock`.

On success it emits the Asset `trialpipe_derived_tables`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import dag, task

from pipeline.dag_defaults import DERIVED_TABLES, EVENT_LOG, START_DATE, WRITER_POOL, default_args

DEFAULT_ARGS = default_args(timedelta(minutes=1), timedelta(hours=2))


@dag(
    dag_id="derive_outcomes",
    schedule=[EVENT_LOG],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["trialpipe", "derive"],
    doc_md=__doc__,
)
def derive_outcomes() -> None:
    @task
    def verify_log() -> str:
        """Re-hash the event log against its hash chain; fail (no derive) when it does not hold."""
        from pipeline.dag_defaults import verify_task

        return verify_task()

    @task(pool=WRITER_POOL, outlets=[DERIVED_TABLES])
    def derive_tables() -> str:
        """Rebuild the SAP tables from the event log."""
        from pipeline.config import load_study, paths_from_env
        from pipeline.derive.api import derive

        paths = paths_from_env()
        return derive(paths, load_study(paths.study)).describe()

    @task(trigger_rule="all_done")
    def notify_red_flags() -> dict[str, Any]:
        """Mail every red-flag alert not yet notified (derive-time alerts among them); fail if it cannot."""
        from pipeline.notify import notify_task

        return notify_task()

    verify_log() >> derive_tables() >> notify_red_flags()


derive_outcomes()
