"""
# ingest_sites

Every five minutes: find the sites whose landing folders hold files not yet
ingested, stage and validate them all at once (`stage_site[<site>]`, on any
worker), commit them one at a time in site order (`commit_site[<site>]`), then
announce the new state of the event log as the Asset `trialpipe_event_log`,
which schedules `derive_outcomes`.

| task | calls |
|---|---|
| `find_sites` | `pipeline.ingest.discover.sites_with_new_files` |
| `stage_site` (per site, in parallel) | `pipeline.ingest.run.stage_one_site`: read, type, GX-validate |
| `commit_site` (per site, one at a time) | `pipeline.ingest.run.commit_one_site`: decide, commit, alert |
| `clear_staging` | removes what this run left staged (a site whose commit failed for good) |
| `announce_event_log` | emits the Asset event; its extra counts files, alerts and rows per site |
| `notify_red_flags` | `pipeline.notify.notify_red_flags(paths, study)`: mails every alert not yet notified |
| `check_sites_ingested` | fails, without retrying, when a site task failed |

**Red flags.** Ingest raises the red-flag alerts itself, in this run, also for
rows it rejects (DTS §5 "Safety first"); they are in the `alerts` table, and
listed in the task's log, as soon as `commit_site` has finished, before any
derivation. `notify_red_flags` then mails every alert not yet notified, in one
message, to `TRIALPIPE_ALERT_EMAIL_TO`; it fails when alerts are pending and no
recipient or SMTP host is configured.

**A failing site stops no other.** `commit_site`, `announce_event_log` and
`notify_red_flags` run once every task before them has finished, whether it
succeeded or not (`trigger_rule="all_done"`): the sites that were staged are
committed, announced and their alerts mailed (a site whose staging failed has
nothing staged: its `commit_site` is skipped). `check_sites_ingested` then turns
the run red when a site task failed (or `find_sites` did).

**Retries are safe.** A file is identified by the SHA-256 of its bytes and is
ingested once, and alerts are kept one per (site, patient, event_id, flag): a
retried or cleared `stage_site` or `commit_site` stores nothing twice (a commit
decides in a transaction it rolls back, so a retry decides again from the rows
as staged).

**In parallel, then one writer.** Staging writes only the site's own staging
area, so the `stage_site` tasks run at the same time on every worker. Every
`commit_site` waits for all of them and runs in the pool `trialpipe_writer`
(1 slot, enforced across the cluster): no two tasks ever commit or hold
`trial.duckdb`. With one slot the commits run in map-index order, which is the
sorted order of the site folders, as the DTS processes files: a site's
cross-row rules (event_id taken, enrollment, targets) see every row the sites
before it accepted in this run.

**Manual runs.** Trigger with the parameter `sites` (e.g. `["NL01"]`) to ingest
the given site folders whether or not discovery sees new files there; nothing
already ingested changes.

Paths come from `TRIALPIPE_STUDY`, `TRIALPIPE_LANDING`, `TRIALPIPE_WAREHOUSE`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from pipeline.dag_defaults import EVENT_LOG, START_DATE, WRITER_POOL, default_args

DEFAULT_ARGS = default_args(timedelta(minutes=1), timedelta(hours=2))


@dag(
    dag_id="ingest_sites",
    schedule="*/5 * * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "sites": Param([], type="array", items={"type": "string"},
                       description="Site folders to ingest regardless of discovery (empty: discover)."),
    },
    tags=["trialpipe", "ingest"],
    doc_md=__doc__,
)
def ingest_sites() -> None:
    @task
    def find_sites(params: dict[str, Any] | None = None) -> list[str]:
        """Sites whose landing folders hold files not yet ingested (or the sites asked for)."""
        from pipeline.config import load_study, paths_from_env
        from pipeline.ingest.discover import sites_with_new_files

        asked = (params or {}).get("sites") or []
        if asked:
            return sorted(set(asked))
        paths = paths_from_env()
        # sorted: with one writer slot, site tasks run in map-index order, i.e. in the DTS processing order
        return sorted(sites_with_new_files(paths, load_study(paths.study)))

    @task(map_index_template="{{ task.op_kwargs['site'] }}")
    def stage_site(site: str, run_id: str | None = None) -> dict[str, Any]:
        """Read, type and GX-validate one site's new files into its staging area (no lock: sites in parallel)."""
        from pipeline.config import load_study, paths_from_env
        from pipeline.ingest.run import airflow_run_id, stage_one_site

        paths = paths_from_env()
        staged = stage_one_site(paths, load_study(paths.study), airflow_run_id(str(run_id)), site)
        print(f"staged {site}: {staged['files']} file(s), {staged['received']} record(s)")
        return staged

    @task(pool=WRITER_POOL, trigger_rule="all_done", map_index_template="{{ task.op_kwargs['site'] }}")
    def commit_site(site: str, run_id: str | None = None) -> dict[str, Any]:
        """Decide, store, quarantine and alert one staged site; the summary goes to the log and XCom."""
        from airflow.sdk.exceptions import AirflowSkipException

        from pipeline.config import load_study, paths_from_env
        from pipeline.ingest.run import airflow_run_id, commit_one_site
        from pipeline.ingest.summary import print_summary

        paths = paths_from_env()
        summary = commit_one_site(paths, load_study(paths.study), airflow_run_id(str(run_id)), site)
        if summary is None:
            raise AirflowSkipException(f"nothing staged for {site} in this run: its stage_site failed "
                                       "(its log says why), or this commit already ran")
        print_summary(summary)
        return summary.to_dict()

    @task(outlets=[EVENT_LOG], trigger_rule="all_done")
    def announce_event_log(summaries: list[dict[str, Any]], *, outlet_events: Any = None) -> dict[str, Any]:
        """Tell the scheduler that the event log changed (this schedules derive_outcomes).

        Runs when every site task has finished, also after a failed one: the sites that were ingested
        are announced. A failed site task left no summary (the sequence holds only the stored ones).
        Skipped when no site task succeeded: no Asset event, no derivation.
        """
        from airflow.sdk.exceptions import AirflowSkipException

        extra: dict[str, Any] = {"files": 0, "alerts": 0, "by_site": {}}
        found = 0
        for i in range(len(summaries)):  # by index: iterating past the end logs a spurious "XCom not found"
            summary = summaries[i]
            if not isinstance(summary, dict):
                continue
            found += 1
            extra["files"] += len(summary["batches"])
            extra["alerts"] += len(summary["alerts"])
            extra["by_site"].update(summary["by_site"])
        if not found:
            raise AirflowSkipException("no site task succeeded: nothing to announce")
        outlet_events[EVENT_LOG].extra = extra
        return extra

    @task(trigger_rule="all_done")
    def notify_red_flags() -> dict[str, Any]:
        """Mail every red-flag alert not yet notified (also after a failed site task); fail if it cannot."""
        from pipeline.notify import notify_task

        return notify_task()

    @task(trigger_rule="one_failed")
    def check_sites_ingested() -> None:
        """Turn the run red (no retry) when a site task failed; the other sites went ahead regardless."""
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("a site task failed (its log says why); the other sites were ingested, "
                                   "announced and their red flags mailed")

    @task(trigger_rule="all_done")
    def clear_staging(run_id: str | None = None) -> list[str]:
        """Remove what this run left staged: a committed site's area is gone already, a failed one's stays till now."""
        from pipeline.config import paths_from_env
        from pipeline.ingest.run import airflow_run_id
        from pipeline.ingest.staging_area import discard_run

        return discard_run(paths_from_env(), airflow_run_id(str(run_id)))

    sites = find_sites()
    staged = stage_site.expand(site=sites)
    summaries = commit_site.expand(site=sites)
    staged >> summaries  # every commit waits for every site's staging: then they run one by one, in site order
    announce_event_log(summaries)  # type: ignore[arg-type]  # an XComArg, resolved at run time
    summaries >> [notify_red_flags(), clear_staging()]
    [staged, summaries] >> check_sites_ingested()


ingest_sites()
