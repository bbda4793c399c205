"""A full disk (ENOSPC) during ingest and during derive: the run fails with a one-line reason, a rerun
after space is freed completes, nothing is lost or doubled and `trialpipe verify` passes.

The warehouse is a small tmpfs (CI runs as root); where mounting is not allowed the tests skip.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.helpers import assert_log_once, assert_verifies, cli, deliver_first, deliver_second, table_digests
from tests.ingest.helpers import Deployment, make_deployment

pytestmark = pytest.mark.slow
SIZE = "24m"


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    if os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a tmpfs, and mounting one needs root")
    dep = make_deployment(tmp_path / "study")
    dep.paths.warehouse.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(dep.paths.warehouse)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield dep
    finally:
        subprocess.run(["umount", "-l", str(dep.paths.warehouse)], check=False)


def _fill(dep: Deployment, leave: int) -> Path:
    """Fill the warehouse's file system up to `leave` free bytes."""
    filler = dep.paths.warehouse / "filler"
    st = os.statvfs(dep.paths.warehouse)
    size = max(0, st.f_bavail * st.f_frsize - leave)
    with open(filler, "wb") as fh:
        try:
            fh.write(b"\0" * size)
            fh.flush()
        except OSError:
            pass
    return filler


def _assert_one_line_failure(run: subprocess.CompletedProcess[str]) -> None:
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trialpipe: "), run.stderr
    assert "space" in lines[0].lower() or "errno 28" in lines[0].lower(), lines[0]


def _events(dep: Deployment) -> list[str]:
    return sorted(str(r[0]) for r in dep.q("SELECT event_id FROM events"))


@pytest.mark.parametrize("leave", [0, 96 * 1024])
def test_a_full_disk_during_ingest_fails_in_one_line_and_a_rerun_completes(dep: Deployment, leave: int) -> None:
    deliver_first(dep)
    assert cli(dep, "ingest").returncode == 0
    before = _events(dep)
    deliver_second(dep)
    filler = _fill(dep, leave)
    run = cli(dep, "ingest")
    if leave == 0 or run.returncode != 0:  # with some space left the run may fail anywhere, or complete
        _assert_one_line_failure(run)
        during = _events(dep)
        assert set(before) <= set(during) and len(during) == len(set(during)), "whole batches or nothing"
    filler.unlink()
    rerun = cli(dep, "ingest")
    assert rerun.returncode == 0, rerun.stderr
    assert len(_events(dep)) == len(before) + 8
    assert_log_once(dep)
    assert_verifies(dep)


def test_a_full_disk_during_derive_fails_in_one_line_and_keeps_the_old_tables(dep: Deployment) -> None:
    deliver_first(dep)
    assert cli(dep, "ingest").returncode == 0
    assert cli(dep, "derive").returncode == 0
    deliver_second(dep)
    assert cli(dep, "ingest").returncode == 0
    old = table_digests(dep.paths.db_path)
    filler = _fill(dep, 0)
    _assert_one_line_failure(cli(dep, "derive"))
    filler.unlink()
    assert table_digests(dep.paths.db_path) == old, "a failed derive leaves the old tables"
    rerun = cli(dep, "derive")
    assert rerun.returncode == 0, rerun.stderr
    assert table_digests(dep.paths.db_path) != old
    assert_log_once(dep)
    assert_verifies(dep)
