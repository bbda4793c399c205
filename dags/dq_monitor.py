"""
# dq_monitor

Daily, 05:30 UTC: computes data quality per site and flags the sites that
have sent nothing for `silent_site_days` (study.toml, default 7) or whose
rejection rate jumped.

| task | calls |
|---|---|
| `check_sites` | `pipeline.report.dq.dq_monitor(paths, study, now=<end of the run's interval>)` |
| `mail_data_manager` | `pipeline.notify.dq.notify_dq_flags(paths, study, status)`: mails each new flag |
| `flag_sites` | fails, without retrying, when a site is flagged; its log names the sites |

`mail_data_manager` mails `TRIALPIPE_DQ_EMAIL_TO` which site is flagged, why (silent for N days, or a
rejection rate of X % against Y %) and since when, once per flag (notification ledger); unset while a
site is flagged, it fails naming the variable. A flagged site also turns the day's run red
(`flag_sites` runs whatever the mail did). The run is green again once the site delivers or its
rejections fall back.

**Retries are safe.** The check reads only the batch ledger (Parquet files
written once, atomically) and stores nothing; the mail is recorded in the notification ledger, so a
retry sends nothing twice; `now` is the end of the run's
data interval, so a re-run of an old day gives that day's answer. As it never
opens `trial.duckdb`, it needs no slot of the pool `trialpipe_writer`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

from pipeline.dag_defaults import START_DATE, default_args

DEFAULT_ARGS = default_args(timedelta(minutes=2), timedelta(hours=1))


@dag(
    dag_id="dq_monitor",
    schedule="30 5 * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["trialpipe", "data-quality"],
    doc_md=__doc__,
)
def dq_monitor() -> None:
    @task
    def check_sites(data_interval_end: datetime | None = None) -> dict[str, Any]:
        """Data quality per site; the silent sites and the sites whose rejection rate jumped."""
        from pipeline.config import load_study, paths_from_env
        from pipeline.report.dq import dq_monitor as run_dq_monitor

        paths = paths_from_env()
        status = run_dq_monitor(paths, load_study(paths.study), now=data_interval_end)
        print(status.describe())
        return {
            "silent_sites": [s.site_id for s in status.silent_sites],
            "rejection_jumps": [j.site_id for j in status.rejection_jumps],
            "description": status.describe(),
        }

    @task
    def flag_sites(status: dict[str, Any]) -> None:
        """Fail the run (no retry) when a site needs the data manager's attention."""
        from airflow.sdk.exceptions import AirflowFailException

        if status["silent_sites"] or status["rejection_jumps"]:
            raise AirflowFailException(status["description"])

    @task
    def mail_data_manager(data_interval_end: datetime | None = None) -> dict[str, Any]:
        """Mail the data manager each flag not mailed before (the same check, at the same instant)."""
        from pipeline.config import load_study, paths_from_env
        from pipeline.notify.dq import notify_dq_flags
        from pipeline.report.dq import dq_monitor as run_dq_monitor

        paths = paths_from_env()
        study = load_study(paths.study)
        result = notify_dq_flags(paths, study, run_dq_monitor(paths, study, now=data_interval_end))
        print(result.describe())
        return {"mailed": [f.item_id for f in result.mailed]}

    status = check_sites()
    status >> mail_data_manager() >> flag_sites.override(trigger_rule="all_done")(status)  # type: ignore[arg-type]


dq_monitor()
