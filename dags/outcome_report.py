"""
# outcome_report

Weekly, Monday 06:00 UTC: writes the outcome report (HTML with plots) and the
data-quality report for the study team, and the per-site query lists that
site coordinators act on (every rejected row: file, line, event_id, rule,
message).

| task | calls |
|---|---|
| `verify_log` | `pipeline.store.audit.verify(paths)`: the log against its hash chain; the report waits for it |
| `write_outcome_report` | `pipeline.report.api.write_reports(paths, study)` |
| `write_query_lists` | `pipeline.ingest.queries.write_query_lists(paths, study)` (also each site's outbox) |
| `mail_reports` | `pipeline.notify.reports.mail_reports(paths, study, written, period=<ISO week of the run>)` |

`mail_reports` mails the outcome report and the data-quality dashboard (PDF, or the HTML without
Chromium) with a plain-text summary to `TRIALPIPE_REPORT_EMAIL_TO`, once per ISO week; unset, it fails
the run with a message naming the variable (the reports are written all the same).

The report reads the derived tables that `derive_outcomes` keeps current.

**Retries are safe.** The writing tasks overwrite their own files and store no events
or alerts; the mail is recorded in the notification ledger, so a retry or a re-run of the week sends
nothing twice.

**One writer.** The three tasks open `trial.duckdb`, which DuckDB locks against every
other process while one writes, so they run in the pool `trialpipe_writer`
(1 slot).

Output: `<warehouse>/reports/` and `<warehouse>/queries/<site>/`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

from pipeline.dag_defaults import START_DATE, WRITER_POOL, default_args

DEFAULT_ARGS = default_args(timedelta(minutes=2), timedelta(hours=2))


@dag(
    dag_id="outcome_report",
    schedule="0 6 * * 1",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["trialpipe", "report"],
    doc_md=__doc__,
)
def outcome_report() -> None:
    @task
    def verify_log() -> str:
        """Re-hash the event log against its hash chain; fail (no report) when it does not hold."""
        from pipeline.dag_defaults import verify_task

        return verify_task()

    @task(pool=WRITER_POOL)
    def write_outcome_report() -> list[str]:
        """Outcome report and data-quality report for the study team."""
        from pipeline.config import load_study, paths_from_env
        from pipeline.report.api import write_reports

        paths = paths_from_env()
        return [str(p) for p in write_reports(paths, load_study(paths.study))]

    @task(pool=WRITER_POOL)
    def write_query_lists() -> list[str]:
        """One query list per site: every rejected row, with the rule it broke."""
        from pipeline.config import load_study, paths_from_env
        from pipeline.ingest.queries import write_query_lists as write_lists

        paths = paths_from_env()
        return [str(p) for p in write_lists(paths, load_study(paths.study))]

    @task(pool=WRITER_POOL)
    def mail_reports(written: list[str], data_interval_end: datetime | None = None) -> dict[str, Any]:
        """The reports and their summary to the study team, once per ISO week."""
        from pathlib import Path

        from pipeline.config import load_study, paths_from_env
        from pipeline.notify.reports import mail_reports as mail
        from pipeline.notify.reports import period_of

        paths = paths_from_env()
        period = None if data_interval_end is None else period_of(data_interval_end)
        result = mail(paths, load_study(paths.study), [Path(p) for p in written], period=period)
        print(result.describe())
        return {"period": result.period, "recipients": list(result.recipients), "already": result.already}

    written = write_outcome_report()
    verify_log() >> written
    mail_reports(written)  # type: ignore[arg-type]  # an XComArg, resolved at run time
    write_query_lists()


outcome_report()
