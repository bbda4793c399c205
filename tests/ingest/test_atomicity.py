"""Kill the ingest (SIGKILL) at any point, rerun it: each event is in the log exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ingest.helpers import Deployment, enrollment, make_deployment, symptom

pytestmark = pytest.mark.slow


def _landing(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2"), symptom("E3", leg_pain_nrs=11,
                                                                            bladder_dysfunction=True)])
    dep.deliver("NL01", "b.jsonl", [symptom(f"S{i}", occurred=f"2026-01-{6 + i:02d}T09:00:00Z") for i in range(5)])
    dep.deliver("NL02", "c.parquet", [enrollment("E9", site="NL02", patient="P9")])


def _cli(dep: Deployment, env: dict[str, str]) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "pipeline.cli", "ingest", "--study", str(dep.paths.study),
            "--landing", str(dep.paths.landing), "--warehouse", str(dep.paths.warehouse)]
    return subprocess.Popen(args, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _assert_exactly_once(dep: Deployment) -> None:
    assert dep.q("SELECT event_id, count(*) FROM events GROUP BY 1 HAVING count(*) > 1") == []
    assert sorted(r[0] for r in dep.q("SELECT event_id FROM events")) == sorted(
        ["E1", "E2", "E9", *(f"S{i}" for i in range(5))])
    assert dep.q("SELECT count(*) FROM quarantine") == [(1,)]
    assert dep.q("SELECT count(*) FROM alerts") == [(1,)]
    assert dep.q("SELECT count(*) FROM batches") == [(3,)]
    assert not list(dep.paths.warehouse.rglob(".*.tmp"))


@pytest.mark.parametrize("point", ["before_rename:3", "before_ledger:2", "after_ledger:1"])
def test_sigkill_at_a_commit_point_then_rerun_gives_each_event_once(tmp_path: Path, point: str) -> None:
    dep = make_deployment(tmp_path / "s")
    _landing(dep)
    proc = _cli(dep, {"TRIALPIPE_CRASH_AT": point})
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, "the crash point was reached"
    dep.ingest()
    _assert_exactly_once(dep)


def test_sigkill_at_arbitrary_moments_then_rerun_gives_each_event_once(tmp_path: Path) -> None:
    dep = make_deployment(tmp_path / "s")
    _landing(dep)
    for delay in (3.0, 9.0):
        proc = _cli(dep, {})
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    dep.ingest()
    _assert_exactly_once(dep)
