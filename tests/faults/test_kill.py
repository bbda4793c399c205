"""SIGKILL of derive, report and lock at named points and at random moments: a rerun completes,
nothing in the log is lost or doubled, the derived tables are the old ones or the new ones (never
a mix), and `trialpipe verify` passes afterwards."""

from __future__ import annotations

import signal
import time
from datetime import datetime

import pytest

from pipeline.derive.api import derive
from tests.faults.helpers import assert_log_once, assert_verifies, cli, popen, table_digests
from tests.ingest.helpers import Deployment

pytestmark = pytest.mark.slow
NO_PDF = {"TRIALPIPE_CHROMIUM": "/nonexistent/chromium"}  # the reports without their PDF copies: faster


def _first_run_cutoff(dep: Deployment) -> datetime:
    """The end of the first ingest run: deriving as of it gives tables that the whole log changes."""
    ((cutoff,),) = dep.q("SELECT max(ingested_at) FROM batches WHERE chain_seq <= 3")
    return cutoff


def _log(dep: Deployment) -> list[list[tuple[object, ...]]]:
    return [sorted(dep.q(sql)) for sql in ("SELECT event_id, content_hash FROM events",
                                           "SELECT batch_id, source_row FROM quarantine",
                                           "SELECT alert_id FROM alerts", "SELECT batch_id FROM batches")]


@pytest.mark.parametrize("point", ["derive_start", "derive_writing", "derive_before_swap", "derive_after_swap"])
def test_sigkill_of_derive_leaves_the_old_or_the_new_tables_and_a_rerun_completes(
        ingested: Deployment, point: str) -> None:
    derive(ingested.paths, ingested.study, as_of=_first_run_cutoff(ingested))
    old, log = table_digests(ingested.paths.db_path), _log(ingested)
    killed = cli(ingested, "derive", env={"TRIALPIPE_CRASH_AT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    after_kill = table_digests(ingested.paths.db_path)

    rerun = cli(ingested, "derive")
    assert rerun.returncode == 0, rerun.stderr
    new = table_digests(ingested.paths.db_path)
    assert new != old and None not in new.values()
    assert after_kill == (new if point == "derive_after_swap" else old), "never a mix of old and new tables"
    assert _log(ingested)[:2] == log[:2] and _log(ingested)[3] == log[3]
    assert_log_once(ingested)
    assert_verifies(ingested)


def test_sigkill_of_derive_at_random_moments_then_rerun_completes(ingested: Deployment) -> None:
    derive(ingested.paths, ingested.study, as_of=_first_run_cutoff(ingested))
    old = table_digests(ingested.paths.db_path)
    states = []
    for delay in (1.5, 3.0, 4.5):
        proc = popen(ingested, "derive")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        states.append(table_digests(ingested.paths.db_path))
    assert cli(ingested, "derive").returncode == 0
    new = table_digests(ingested.paths.db_path)
    assert None not in new.values()
    assert all(state in (old, new) for state in states), "never a mix of old and new tables"
    assert_log_once(ingested)
    assert_verifies(ingested)


@pytest.mark.parametrize("kill", ["report_writing", "random"])
def test_sigkill_of_report_then_rerun_writes_whole_reports(ingested: Deployment, kill: str) -> None:
    assert cli(ingested, "derive").returncode == 0
    log = _log(ingested)
    if kill == "random":
        proc = popen(ingested, "report", env=NO_PDF)
        time.sleep(4.0)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    else:
        killed = cli(ingested, "report", env={**NO_PDF, "TRIALPIPE_CRASH_AT": kill})
        assert killed.returncode == -signal.SIGKILL, killed.stderr
    rerun = cli(ingested, "report", env=NO_PDF)
    assert rerun.returncode == 0, rerun.stderr
    for name in ("outcome_report.html", "dq_dashboard.html"):
        assert (ingested.paths.reports_dir / name).read_text(encoding="utf-8").rstrip().endswith("</html>")
    assert _log(ingested) == log
    assert_log_once(ingested)
    assert_verifies(ingested)


@pytest.mark.parametrize("point", ["lock_writing", "lock_before_rename", "lock_after_rename"])
def test_sigkill_of_lock_then_rerun_gives_one_whole_lock(ingested: Deployment, point: str) -> None:
    killed = cli(ingested, "lock", "L1", env={"TRIALPIPE_CRASH_AT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    locks = ingested.paths.warehouse / "datalocks"
    assert (locks / "L1").exists() == (point == "lock_after_rename"), "a lock appears whole or not at all"

    rerun = cli(ingested, "lock", "L1")
    if point == "lock_after_rename":
        assert rerun.returncode == 1 and "already exists" in rerun.stderr
    else:
        assert rerun.returncode == 0, rerun.stderr
    assert [p.name for p in locks.iterdir()] == ["L1"], "no half-written lock is left behind"
    checked = cli(ingested, "lock", "--verify", "L1")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert_log_once(ingested)
    assert_verifies(ingested)


@pytest.mark.parametrize("point", ["before_ledger:1", "after_ledger:1", "before_head:1"])
def test_verify_passes_over_a_half_committed_batch_and_the_next_ingest_completes_it(
        ingested: Deployment, point: str) -> None:
    """Files without a ledger record are a commit in progress (or its leftover); a head one link behind
    is a crash between the record and the head. Neither is a problem; the next writer mends both."""
    from pipeline.store.audit import verify
    from tests.ingest.helpers import symptom

    ingested.deliver("NL01", "late.csv", [symptom(f"L{i}", occurred=f"2026-03-{1 + i:02d}T09:00:00Z")
                                          for i in range(3)])
    killed = cli(ingested, "ingest", env={"TRIALPIPE_CRASH_AT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    during = verify(ingested.paths)
    assert during.ok, during.problems
    assert (during.leftovers > 0) == (point == "before_ledger:1")
    assert cli(ingested, "ingest").returncode == 0
    assert len(ingested.q("SELECT * FROM events WHERE event_id LIKE 'L%'")) == 3
    assert_log_once(ingested)
    assert_verifies(ingested)
