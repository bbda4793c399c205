"""Stage every site first, in any order (as parallel workers do), then commit in site order (issue 11).

`ingest_sites` runs `stage_site` for all sites at once, each possibly in another process on another
machine, then `commit_sites` commits every staged site in DTS order in one process, through the sites'
staging areas. The log must be what `trialpipe ingest` stores, cross-site rules included; a commit
killed midway leaves the sites before committed and its retry commits the rest, none twice; a site whose
commit fails stays staged while the others go ahead.
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

from pipeline.ingest import run
from pipeline.ingest.run import commit_sites, stage_one_site
from pipeline.ingest.staging_area import SiteStaging, dts_order, load, staged_folders
from pipeline.ingest.summary import IngestSummary, stored_summary
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


def _committed(results: list[tuple[str, IngestSummary | Exception]]) -> list[str]:
    assert all(isinstance(r, IngestSummary) for _, r in results), results
    return [site for site, _ in results]


def test_staging_every_site_before_committing_any_stores_what_ingest_stores(
        tmp_path: Path, expected: dict[str, list[tuple[Any, ...]]]) -> None:
    dep = _copy(tmp_path, "staged")
    for site in ("NL02", "NL01"):  # staged in the other order: staging sees no other site
        stage_one_site(dep.paths, dep.study, "run-1", site)
    assert load(dep.paths, "run-1", "NL01") is not None and dep.q("SELECT count(*) FROM batches") == [(0,)]
    assert staged_folders(dep.paths, "run-1") == ["NL01", "NL02"]
    results = commit_sites(dep.paths, dep.study, "run-1")  # in site order, from the staging areas alone
    assert _committed(results) == ["NL01", "NL02"]
    assert _log(dep) == expected
    assert dep.q("SELECT site_id, rules FROM quarantine WHERE event_id = 'X1'") == [("NL02", ["event_id_conflict"])]
    assert not any(dep.paths.staging_dir.iterdir())  # each commit removed its area
    assert commit_sites(dep.paths, dep.study, "run-1") == []  # a cleared commit: nothing staged
    # what the ledger says the run stored is what the commits reported, in commit order
    told = [b for _, r in results if isinstance(r, IngestSummary) for b in r.to_dict()["batches"]]
    assert stored_summary(dep.paths, "run-1").to_dict()["batches"] == told
    assert len(stored_summary(dep.paths, "run-1").alerts) == sum(len(r.alerts) for _, r in results
                                                                 if isinstance(r, IngestSummary)) > 0
    assert stored_summary(dep.paths, "run-2").batches == []


def test_sites_commit_in_the_order_of_their_files_paths() -> None:
    """DTS: files in lexicographic order of their path, so `NL-2/a.csv` before `NL/a.csv` (`-` < `/`)."""
    assert sorted(["NL", "NL-2", "NL_3", "NL0"], key=dts_order) == ["NL-2", "NL", "NL0", "NL_3"]
    assert sorted(f"{f}/a.csv" for f in ("NL", "NL-2", "NL_3", "NL0")) == [
        f"{f}/a.csv" for f in sorted(["NL", "NL-2", "NL_3", "NL0"], key=dts_order)]


COMMIT = ("import sys; from pathlib import Path; from pipeline.config import Paths, load_study; "
          "from pipeline.ingest.run import commit_sites; p = Paths(*map(Path, sys.argv[1:4])); "
          "commit_sites(p, load_study(p.study), 'run-1')")


# the batches in commit order: NL01/a.csv (1), NL02/b.csv (2), NL02/c.csv (3, rejected whole)
@pytest.mark.parametrize(("point", "still_staged"), [
    ("before_ledger:1", ["NL01", "NL02"]),  # in the first site's only file
    ("after_ledger:1", ["NL01", "NL02"]),  # its file committed, its area not yet removed
    ("after_ledger:2", ["NL02"]),  # the first site done, the second halfway
    ("before_ledger:3", ["NL02"]),
])
def test_a_commit_killed_midway_commits_the_rest_on_retry_and_nothing_twice(
        tmp_path: Path, expected: dict[str, list[tuple[Any, ...]]], point: str, still_staged: list[str]) -> None:
    dep = _copy(tmp_path, "killed")
    for site in ("NL01", "NL02"):
        stage_one_site(dep.paths, dep.study, "run-1", site)
    args = [str(dep.paths.study), str(dep.paths.landing), str(dep.paths.warehouse)]
    killed = subprocess.run([sys.executable, "-c", COMMIT, *args], env={**os.environ, "TRIALPIPE_CRASH_AT": point},
                            capture_output=True, timeout=300, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode(errors="replace")[-2000:]
    assert staged_folders(dep.paths, "run-1") == still_staged
    assert _committed(commit_sites(dep.paths, dep.study, "run-1")) == still_staged  # the retry
    assert _log(dep) == expected
    assert len(stored_summary(dep.paths, "run-1").batches) == 3  # every file once, over both tries


def test_a_site_whose_commit_fails_stays_staged_while_the_next_site_commits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dep = make_deployment(tmp_path / "failing")
    _landing(dep)
    for site in ("NL01", "NL02"):
        stage_one_site(dep.paths, dep.study, "run-1", site)
    commit = run.commit_site

    def failing_nl01(paths: Any, staging: SiteStaging, summary: IngestSummary) -> None:
        if staging.folder == "NL01":
            raise OSError("injected: the warehouse volume went away")
        commit(paths, staging, summary)

    monkeypatch.setattr(run, "commit_site", failing_nl01)
    (nl01, failed), (nl02, done) = commit_sites(dep.paths, dep.study, "run-1")
    assert (nl01, nl02) == ("NL01", "NL02") and isinstance(failed, OSError) and isinstance(done, IngestSummary)
    assert staged_folders(dep.paths, "run-1") == ["NL01"]
    assert dep.q("SELECT DISTINCT site_id FROM batches") == [("NL02",)]
    monkeypatch.setattr(run, "commit_site", commit)
    assert _committed(commit_sites(dep.paths, dep.study, "run-1")) == ["NL01"]  # the retry
    # NL01 came after NL02 this time, as if its staging had failed: NL02 took X1 first
    assert dep.q("SELECT site_id, rules FROM quarantine WHERE event_id = 'X1'") == [("NL01", ["event_id_conflict"])]
    assert dep.q("SELECT count(*) FROM batches") == [(3,)]
