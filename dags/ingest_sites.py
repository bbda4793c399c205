"""
# ingest_sites

Every five minutes: find the sites whose landing folders hold files not yet
ingested, stage and validate them all at once (`stage_site[<site>]`, on any
worker), then commit them one after the other in site order in one task
(`commit_sites`), then announce the new state of the event log as the Asset
`trialpipe_event_log`, which schedules `derive_outcomes`.

| task | calls |
|---|---|
| `find_sites` | `pipeline.ingest.discover.sites_with_new_files` |
| `stage_site` (per site, in parallel) | `pipeline.ingest.run.stage_one_site`: read, type, GX-validate |
| `commit_sites` (every staged site, in site order) | `pipeline.ingest.run.commit_sites`: decide, commit, alert |
| `clear_staging` | removes what this run left staged (a site whose commit failed for good) |
| `announce_event_log` | emits the Asset event; its extra counts the files, alerts and rows per site this run stored |
| `notify_red_flags` | `pipeline.notify.notify_red_flags(paths, study)`: mails every alert not yet notified |
| `check_sites_ingested` | fails, without retrying, when a site task failed |

**Red flags.** Ingest raises the red-flag alerts itself, in this run, also for
rows it rejects (DTS §5 "Safety first"); they are in the `alerts` table, and
listed in the task's log, as soon as `commit_sites` has finished, before any
derivation. `notify_red_flags` then mails every alert not yet notified, in one
message, to `TRIALPIPE_ALERT_EMAIL_TO`; it fails when alerts are pending and no
recipient or SMTP host is configured.

**A failing site stops no other.** `commit_sites` runs once every `stage_site`
has finished and at least one succeeded (`trigger_rule="all_done_min_one_success"`):
it commits the sites that were staged (a site whose staging failed has nothing
staged and waits for the next run). A site whose commit fails stays staged while
the next sites are committed; the task then fails and its retry commits what is
still staged. `announce_event_log` and `notify_red_flags` run once the commit has
finished, whether it succeeded or not (`trigger_rule="all_done"`): the sites that
were stored are announced and their alerts mailed. `check_sites_ingested` then
turns the run red when a site task failed (or `find_sites` did).

**Retries are safe.** A file is identified by the SHA-256 of its bytes and is
ingested once, and alerts are kept one per (site, patient, event_id, flag): a
retried or cleared `stage_site` or `commit_sites` stores nothing twice. Each file
commits atomically and a committed site's staging area is removed at once: a
commit killed midway leaves the sites before committed, and its retry commits
the rest (a commit decides in a transaction it rolls back, so a retry decides
again from the rows as staged, against the ledger as it is then).

**In parallel, then one writer.** Staging writes only the site's own staging
area, so the `stage_site` tasks run at the same time on every worker.
`commit_sites` waits for all of them and runs in the pool `trialpipe_writer`
(1 slot, enforced across the cluster): no two tasks ever commit or hold
`trial.duckdb`. It commits the sites in the DTS processing order (that of their
files' paths, as `trialpipe ingest` does), in one process that starts, imports
and builds its GX context once: a site's cross-row rules (event_id taken,
enrollment, targets) see every row the sites before it accepted in this run.

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
        # sorted: the map indexes follow the sites (commit_sites puts them in the DTS order itself)
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

    @task(pool=WRITER_POOL, trigger_rule="all_done_min_one_success")
    def commit_sites(run_id: str | None = None) -> list[str]:
        """Decide, store, quarantine and alert every staged site, one after the other in DTS order, in this process.

        Runs once every staging has finished and one succeeded; a site whose staging failed has nothing staged
        and waits for the next run. A site whose commit fails stays staged, the others go ahead; the task then
        fails, and its retry commits what is still staged.
        """
        import traceback

        from airflow.sdk.exceptions import AirflowException

        from pipeline.config import load_study, paths_from_env
        from pipeline.ingest.run import airflow_run_id, commit_sites
        from pipeline.ingest.summary import IngestSummary, print_summary

        paths = paths_from_env()
        results = commit_sites(paths, load_study(paths.study), airflow_run_id(str(run_id)))
        for site, result in results:
            if isinstance(result, IngestSummary):
                print(f"committed {site}:")
                print_summary(result)
            else:
                print(f"COMMIT FAILED {site} (left staged for the retry):")
                print("".join(traceback.format_exception(result)), end="")
        failed = [site for site, result in results if not isinstance(result, IngestSummary)]
        if failed:
            raise AirflowException(f"the commit of {', '.join(failed)} failed (the log above says why); the "
                                   "other sites were committed")
        return [site for site, _ in results]

    @task(outlets=[EVENT_LOG], trigger_rule="all_done")
    def announce_event_log(run_id: str | None = None, *, outlet_events: Any = None) -> dict[str, Any]:
        """Tell the scheduler that the event log changed (this schedules derive_outcomes).

        Runs when the commit has finished, also after a failed one: the sites that were ingested are
        announced. The counts are what the ledger says this run stored (every try of the commit).
        Skipped when the run stored nothing: no Asset event, no derivation.
        """
        from airflow.sdk.exceptions import AirflowSkipException

        from pipeline.config import paths_from_env
        from pipeline.ingest.run import airflow_run_id
        from pipeline.ingest.summary import stored_summary

        summary = stored_summary(paths_from_env(), airflow_run_id(str(run_id)))
        if not summary.batches:
            raise AirflowSkipException("this run stored nothing: nothing to announce")
        extra = {"files": len(summary.batches), "alerts": len(summary.alerts), "by_site": summary.by_site()}
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

    staged = stage_site.expand(site=find_sites())
    committed = commit_sites()
    staged >> committed  # the commit waits for every site's staging, then commits them one by one, in DTS order
    committed >> [announce_event_log(), notify_red_flags(), clear_staging()]
    [staged, committed] >> check_sites_ingested()


ingest_sites()
