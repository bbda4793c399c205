"""Stage every site first, in any order (as parallel workers do), then commit in site order (issue 11).

`ingest_sites` runs `stage_site` for all sites at once and `commit_site` one at a time in site order,
each possibly in another process on another machine, through the site's staging area. The log must
be what `trialpipe ingest` stores, cross-site rules included, and a commit killed midway must be
retried from the rows as staged.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.ingest.run import commit_one_site, stage_one_site
from pipeline.ingest.staging_area import load
from tests.ingest.helpers import Deployment, enrollment, make_deployment, symptom

RUN_COLUMNS = {"events": "batch_id, ingested_at", "quarantine": "batch_id, ingested_at",
               "alerts": "batch_id, raised_at",
               # the hash chain names the files of one run (batch ids, times) and the link before it
               "batches": "batch_id, run_id, ingested_at, chain_prev, files"}


def _landing(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2", leg=4), symptom("X1", leg=9,
                                                                                bladder_dysfunction=True)])
    dep.deliver("NL02", "b.csv", [enrollment("E9", site="NL02", patient="P9"),
                                  symptom("X1", site="NL02", patient="P9"),  # NL01 took X1 earlier in the run
                                  symptom("E10", site="NL02", patient="P9", leg_pain_nrs=14)])
    dep.deliver("NL02", "c.csv", b"not,a,delivery\n")


def _log(dep: Deployment) -> dict[str, list[tuple[Any, ...]]]:
    return {name: dep.q(f"SELECT * EXCLUDE ({cols}) FROM {name} ORDER BY ALL") for name, cols in RUN_COLUMNS.items()}


@pytest.fixture
def expected(tmp_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    dep = make_deployment(tmp_path / "cli")
    _landing(dep)
    dep.ingest()
    log = _log(dep)
    assert log["events"] and log["quarantine"] and log["alerts"]
    return log


def _copy(tmp_path: Path, name: str) -> Deployment:
    dep = make_deployment(tmp_path / name)
    shutil.copytree(tmp_path / "cli" / "landing", dep.paths.landing)
    return dep


def test_staging_every_site_before_committing_any_stores_what_ingest_stores(
        tmp_path: Path, expected: dict[str, list[tuple[Any, ...]]]) -> None:
    dep = _copy(tmp_path, "staged")
    for site in ("NL02", "NL01"):  # staged in the other order: staging sees no other site
        stage_one_site(dep.paths, dep.study, "run-1", site)
    assert load(dep.paths, "run-1", "NL01") is not None and dep.q("SELECT count(*) FROM batches") == [(0,)]
    for site in ("NL01", "NL02"):  # committed in site order, from the staging areas alone
        assert commit_one_site(dep.paths, dep.study, "run-1", site) is not None
    assert _log(dep) == expected
    assert dep.q("SELECT site_id, rules FROM quarantine WHERE event_id = 'X1'") == [("NL02", ["event_id_conflict"])]
    assert not any(dep.paths.staging_dir.iterdir())  # each commit removed its area
    assert commit_one_site(dep.paths, dep.study, "run-1", "NL01") is None  # a cleared commit: nothing staged


COMMIT = ("import sys; from pathlib import Path; from pipeline.config import Paths, load_study; "
          "from pipeline.ingest.run import commit_one_site; p = Paths(*map(Path, sys.argv[1:4])); "
          "commit_one_site(p, load_study(p.study), 'run-1', sys.argv[4])")


@pytest.mark.parametrize("point", ["before_ledger:1", "after_ledger:1"])
def test_a_commit_killed_midway_is_retried_from_the_rows_as_staged(
        tmp_path: Path, expected: dict[str, list[tuple[Any, ...]]], point: str) -> None:
    dep = _copy(tmp_path, "killed")
    for site in ("NL01", "NL02"):
        stage_one_site(dep.paths, dep.study, "run-1", site)
    args = [str(dep.paths.study), str(dep.paths.landing), str(dep.paths.warehouse), "NL01"]
    killed = subprocess.run([sys.executable, "-c", COMMIT, *args], env={**os.environ, "TRIALPIPE_CRASH_AT": point},
                            capture_output=True, timeout=300, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode(errors="replace")[-2000:]
    for site in ("NL01", "NL02"):  # the retry, then the next site
        assert commit_one_site(dep.paths, dep.study, "run-1", site) is not None
    assert _log(dep) == expected
