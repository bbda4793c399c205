"""The DAGs mail the red flags (`notify_red_flags`), also when a site task fails (dag.test(), real SMTP sink).

A failing site (its staging or its commit) stops neither the other sites' Asset event nor their red-flag mail, and
still turns the run red; unconfigured mail with pending alerts fails the notify task.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.notify import ENV_VARS, notified_ids, pending_alerts
from tests.dags.test_dag_runs import load_dag, states
from tests.ingest.helpers import Deployment, enrollment, make_deployment, symptom
from tests.smtp_sink import SmtpSink, smtp_sink

pytestmark = [pytest.mark.timeout(300)]


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with smtp_sink() as s:
        yield s


@pytest.fixture
def dep(tmp_path: Path) -> Deployment:
    dep = make_deployment(tmp_path / "study")
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2", leg_pain_nrs=14, bladder_dysfunction=True)])
    dep.deliver("NL02", "b.csv", [enrollment("E9", patient="P9", site="NL02"),
                                  symptom("E10", patient="P9", site="NL02", bowel_dysfunction=True)])
    return dep


def failing_for(site: str, run: Callable[..., Any]) -> Callable[..., Any]:
    def stage_site(site_id: str, **context: Any) -> Any:
        if site_id == site:
            raise RuntimeError(f"injected failure of {site}")
        return run(site_id, **context)

    return stage_site


def run(dag_id: str, dep: Deployment, mail: dict[str, str], fail_site: str | None = None,
        fail_at: str = "stage") -> tuple[str, Any]:
    """dag.test() of a DAG with the deployment's paths and mail settings; (run state, task states)."""
    from airflow.utils.session import create_session

    from pipeline.ingest import run as ingest_run
    from pipeline.ingest.staging_area import SiteStaging

    dag = load_dag(dag_id)
    faults = pytest.MonkeyPatch()
    if fail_site is not None and fail_at == "stage":  # this site's staging raises, as after its retries ran out
        task = dag.get_task("stage_site")
        original = task.python_callable
        task.python_callable = lambda site, run_id=None: failing_for(fail_site, original)(site, run_id=run_id)
    elif fail_site is not None:  # this site's commit raises inside commit_sites (dag.test() runs it in this process)
        commit = ingest_run.commit_site

        def commit_site(paths: Any, staging: SiteStaging, summary: Any) -> None:
            if staging.folder == fail_site:
                raise RuntimeError(f"injected failure of {fail_site}")
            commit(paths, staging, summary)

        faults.setattr(ingest_run, "commit_site", commit_site)
    with pytest.MonkeyPatch.context() as env:
        for name in ENV_VARS:
            env.delenv(name, raising=False)
        for name, value in mail.items():
            env.setenv(name, value)
        env.setenv("TRIALPIPE_STUDY", str(dep.paths.study))
        env.setenv("TRIALPIPE_LANDING", str(dep.paths.landing))
        env.setenv("TRIALPIPE_WAREHOUSE", str(dep.paths.warehouse))
        try:
            dag_run = dag.test()
        finally:
            faults.undo()
    with create_session() as session:
        tis = {(ti.task_id, ti.rendered_map_index or ti.map_index): ti
               for ti in dag_run.get_task_instances(session=session)}
        return str(dag_run.get_state()), states(tis)


@pytest.mark.parametrize("fail_at", ["stage", "commit"])
def test_a_failing_site_stops_neither_the_other_sites_announcement_nor_their_red_flag_mail(
        airflow_db: Path, dep: Deployment, sink: SmtpSink, fail_at: str) -> None:
    state, got = run("ingest_sites", dep, sink.env(), fail_site="NL02", fail_at=fail_at)
    assert got[("stage_site", "NL01")] == "success", got
    assert got[("stage_site", "NL02")] == ("failed" if fail_at == "stage" else "success"), got
    # a failed staging leaves nothing to commit for its site; a failed site commit fails the task after the others
    assert got[("commit_sites", -1)] == ("success" if fail_at == "stage" else "failed"), got
    assert got[("announce_event_log", -1)] == "success", got
    assert got[("notify_red_flags", -1)] == "success", got
    assert got[("check_sites_ingested", -1)] == "failed", got
    assert state == "failed"  # the failed site still turns the run red
    (mail,) = sink.messages
    assert "NL01" in mail.body and "NL02" not in mail.body and "BLADDER [UNVALIDATED" in mail.body
    assert pending_alerts(dep.paths) == []
    assert not dep.paths.staging_dir.is_dir() or not any(dep.paths.staging_dir.iterdir())  # clear_staging
    # the next run ingests NL02 and mails its alert alone; derive then finds nothing new to mail
    state, got = run("ingest_sites", dep, sink.env())
    assert state == "success" and got[("check_sites_ingested", -1)] == "skipped", got
    assert len(sink.messages) == 2 and "BOWEL" in sink.messages[1].body and "NL01" not in sink.messages[1].body
    state, got = run("derive_outcomes", dep, sink.env())
    assert state == "success" and got[("notify_red_flags", -1)] == "success", got
    assert len(notified_ids(dep.paths)) == 2 and len(sink.messages) == 2


def test_unconfigured_mail_with_pending_alerts_fails_the_notify_task(airflow_db: Path, dep: Deployment) -> None:
    state, got = run("ingest_sites", dep, {})
    assert got[("stage_site", "NL01")] == got[("stage_site", "NL02")] == got[("commit_sites", -1)] == "success", got
    assert got[("announce_event_log", -1)] == "success", got  # derivation goes ahead
    assert got[("notify_red_flags", -1)] == "failed", got
    assert state == "failed"
    assert len(pending_alerts(dep.paths)) == 2 and notified_ids(dep.paths) == set()


def test_nothing_pending_needs_no_mail_settings(airflow_db: Path, tmp_path: Path) -> None:
    empty = make_deployment(tmp_path / "empty")
    state, got = run("ingest_sites", empty, {})
    assert state == "success", got
    assert got[("announce_event_log", -1)] == "skipped" and got[("notify_red_flags", -1)] == "success", got
    assert got[("commit_sites", -1)] == got[("check_sites_ingested", -1)] == "skipped", got


def test_ingest_sites_mails_a_site_contact_its_new_queries_once(airflow_db: Path, tmp_path: Path,
                                                                 sink: SmtpSink) -> None:
    contact = "coordinator@nl01.example.org"
    dep = make_deployment(tmp_path / "contact")
    dep.paths.study.write_text(dep.paths.study.read_text().replace(
        'name = "Leiden"\n', f'name = "Leiden"\ncontact_email = "{contact}"\n'))
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2", leg_pain_nrs=14)])
    state, got = run("ingest_sites", dep, sink.env())
    assert state == "success" and got[("notify_red_flags", -1)] == "success", got
    (mail,) = sink.to(contact)
    assert mail.rcpt_to == [contact] and "1 new query" in mail.subject and "NL02" not in mail.body
    assert set(mail.attachments()) == {"query_list.csv"}
    assert (dep.root / "outbox" / "NL01" / "query_list.csv").exists()
    state, _ = run("ingest_sites", dep, sink.env())  # nothing new: nothing mailed
    assert state == "success" and len(sink.to(contact)) == 1
