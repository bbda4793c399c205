"""`trialpipe ingest` and `trialpipe validate`: stage outside the lock, decide and commit under it.

Per site, two steps: `stage_site` (read, type, GX-validate into the site's own staging area; no lock,
so sites stage in parallel, on any worker) and `commit_site` (decide the cross-row rules against the
log as committed so far, then commit; one site at a time, in DTS order, under the writer). The CLI
runs them one after the other per site; the DAG `ingest_sites` stages every site at once, then
commits them all in DTS order in one task (`commit_sites`) in the 1-slot pool `trialpipe_writer`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from pipeline.config import ConfigError, Paths, Study
from pipeline.ingest import crossrow
from pipeline.ingest.discover import LandingFile, Ledger, identify, not_picked_up, read_ledger, scan, sha256_of
from pipeline.ingest.gx_validate import RowChecker
from pipeline.ingest.outputs import build_batch, summarise_findings
from pipeline.ingest.queries import format_query_list, query_rows_for_validation, write_query_lists
from pipeline.ingest.stage import StagedFile, Stager, scratch, unstage
from pipeline.ingest.staging_area import SiteStaging, area, discard, load, save, staged_folders
from pipeline.ingest.suites import TYPE_SUITES
from pipeline.ingest.summary import IngestSummary
from pipeline.progress import Display
from pipeline.store.alerts import raised_keys
from pipeline.store.commit import commit, recover
from pipeline.store.warehouse import connect, events_sql, writer_lock

#: DuckDB threads of a scratch database (unset: DuckDB's default, every core); one per worker core when
#: several Celery workers share a machine
SCRATCH_THREADS = os.environ.get("TRIALPIPE_DUCKDB_THREADS", "")

_checker: RowChecker | None = None


def checker() -> RowChecker:
    """One GX context per process (building it costs more than a small validation)."""
    global _checker
    if _checker is None:
        _checker = RowChecker()
    return _checker


def payload_checker(frame: pd.DataFrame) -> list[tuple[int, str, str]]:
    """Validate corrections' payloads as events of their target's type (the per-type suites)."""
    verdict = checker().check(frame, {}, suites=TYPE_SUITES)
    return [(row, f.rule, f.message) for row, fs in verdict.findings.items() for f in fs]


def _batch_id(at: datetime, sha: str) -> str:
    return f"{at:%Y%m%dT%H%M%S%f}-{sha[:12]}-{uuid.uuid4().hex[:6]}"


def ingest(paths: Paths, study: Study, sites: Sequence[str] | None = None, progress: bool = False) -> IngestSummary:
    """Ingest every new file under the landing zone (optionally only some site folders).

    A landing zone that does not exist is an error, not an empty delivery: a mistyped
    path would otherwise report "nothing new" for ever.
    """
    if not paths.landing.is_dir():
        raise ConfigError(f"landing zone {paths.landing} is not a folder (create it, or give --landing)")
    run_id = f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    summary = IngestSummary(run_id)
    paths.warehouse.mkdir(parents=True, exist_ok=True)
    with writer_lock(paths):
        recover(paths)
    ledger = read_ledger(paths)
    found = [(f, identify(f, ledger)) for f in scan(paths.landing) if sites is None or f.site_folder in sites]
    pending = [(f, sha) for f, sha in found if (f.relpath, sha) not in ledger.seen_pairs]  # as discover.new_files
    summary.skipped = len(found) - len(pending)
    for folder, group in groupby(pending, key=lambda x: x[0].site_folder):
        # one machine: stage (no lock), then decide and commit under the file lock, site after site
        with Display(progress) as display:  # a rich display on a terminal, else nothing
            staging = stage_site(paths, study, run_id, folder, list(group), ledger, progress, keep_open=True,
                                 display=display)
            display.stage(f"{folder}: deciding and committing")
            try:
                commit_site(paths, staging, summary)
            finally:
                discard(staging)
    summary.not_read = [e for e in not_picked_up(paths.landing) if sites is None or e.split("/", 1)[0] in sites]
    # every run rewrites them: a run that crashed after its last commit left them out of date
    write_query_lists(paths, study)
    return summary


def _open_scratch(path: Path) -> duckdb.DuckDBPyConnection:
    con = scratch(path, memory_limit="256MB")  # spills beyond; bounds RSS for huge files
    if SCRATCH_THREADS:
        con.execute(f"SET threads = {int(SCRATCH_THREADS)}")
    return con


def stage_site(paths: Paths, study: Study, run_id: str, folder: str, files: list[tuple[LandingFile, str]],
               ledger: Ledger, progress: bool = False, keep_open: bool = False,
               display: Display | None = None) -> SiteStaging:
    """Read, type and GX-validate one site's new files into its own staging area; no lock, no warehouse write.

    Sites are independent here (only the commit sees other sites' rows), so any worker may stage any
    site at the same time as others. The area is rebuilt from nothing: a retry starts clean.
    """
    work = area(paths, run_id, folder)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    staging = SiteStaging(run_id, folder, work)
    con = _open_scratch(staging.scratch_path)
    try:
        seen_ok: set[str] = set()
        stager = Stager(con, checker(), study)
        if display is not None:
            stager.on_bytes = display.advance
        for idx, (f, sha) in enumerate(files):
            if (folder, sha) in ledger.ingested or sha in seen_ok:
                staging.files.append(StagedFile(f, sha, idx, None))  # a file_duplicate: not read again
                continue
            if display is not None and display.enabled:
                display.file(f.relpath, f.size)
            elif progress:
                print(f"reading {f.relpath} ...", file=sys.stderr, flush=True)
            s = stager.add(f, sha, idx)
            if s.rejected is None:
                seen_ok.add(sha)
            staging.files.append(s)
        if display is not None:
            display.stage(f"{folder}: validating with Great Expectations")
        staging.validations = stager.validations()
    except BaseException:
        con.close()
        shutil.rmtree(work, ignore_errors=True)
        raise
    if keep_open:
        staging.con = con
    else:
        con.close()  # checkpoints the scratch file: another process (machine) may commit it; then save()
    return staging


def commit_site(paths: Paths, staging: SiteStaging, summary: IngestSummary) -> None:
    """Decide and commit one staged site under the writer lock (the caller keeps sites in DTS order).

    The decision runs in a transaction that is rolled back afterwards: the scratch tables stay as
    staged, so a retried commit decides again from the same rows (against the log as it is then).
    """
    con = staging.con if staging.con is not None else _open_scratch(staging.scratch_path)
    try:
        with writer_lock(paths):
            recover(paths)
            con.begin()
            try:
                _decide_and_commit(paths, con, staging.files, summary, dict(staging.validations))
            finally:
                con.rollback()
            connect(paths).close()  # refresh the views of trial.duckdb
    finally:
        if staging.con is None:
            con.close()


def airflow_run_id(dag_run_id: str) -> str:
    """The ingest run id of an Airflow DAG run: fixed length, so no run's staging areas prefix another's."""
    return "airflow-" + hashlib.sha256(dag_run_id.encode()).hexdigest()[:16]


def stage_one_site(paths: Paths, study: Study, run_id: str, site: str) -> dict[str, Any]:
    """The `stage_site` task: discover one site folder's new files and stage them (a small summary for XCom)."""
    if not paths.landing.is_dir():
        raise ConfigError(f"landing zone {paths.landing} is not a folder (create it, or give --landing)")
    ledger = read_ledger(paths)
    found = [(f, identify(f, ledger)) for f in scan(paths.landing) if f.site_folder == site]
    pending = [(f, sha) for f, sha in found if (f.relpath, sha) not in ledger.seen_pairs]
    staging = stage_site(paths, study, run_id, site, pending, ledger)
    staging.skipped = len(found) - len(pending)
    staging.not_read = [e for e in not_picked_up(paths.landing) if e.split("/", 1)[0] == site]
    save(staging)
    return {"site": site, "files": len(staging.files), "received": sum(s.received for s in staging.files)}


def commit_sites(paths: Paths, study: Study, run_id: str) -> list[tuple[str, IngestSummary | Exception]]:
    """The `commit_sites` task: commit every site staged in this run, in DTS order, in this one process.

    One process pays the start-up (imports, the GX context) once for all sites. Each site commits as
    `commit_site` does, every file atomically, and its area is discarded after: a retry after a crash
    commits what is still staged, and finds in the ledger the files a crash left committed (none twice).
    A site whose commit fails stays staged and the next site goes ahead, as after a failed staging.
    """
    results: list[tuple[str, IngestSummary | Exception]] = []
    for folder in staged_folders(paths, run_id):
        staging = load(paths, run_id, folder)
        if staging is None:
            continue
        summary = IngestSummary(run_id, skipped=staging.skipped, not_read=staging.not_read)
        try:
            commit_site(paths, staging, summary)
        except Exception as exc:  # the caller reports it; the site stays staged for the retry
            results.append((folder, exc))
            continue
        discard(staging)
        results.append((folder, summary))
    write_query_lists(paths, study)
    return results


def _status(s: StagedFile, fresh: Ledger, committed_now: set[str]) -> str | None:
    if (s.file.relpath, s.sha256) in fresh.seen_pairs:
        return None  # another process took it meanwhile
    if s.rejected is not None:
        return "rejected"
    if s.fmt is None or (s.file.site_folder, s.sha256) in fresh.ingested or s.sha256 in committed_now:
        return "file_duplicate"
    return "ingested"


def _decide_and_commit(paths: Paths, con: duckdb.DuckDBPyConnection, staged: list[StagedFile],
                       summary: IngestSummary, validations: dict[str, dict[str, Any]]) -> None:
    fresh = read_ledger(paths)
    statuses: list[str | None] = []
    committed_now: set[str] = set()
    for s in staged:
        st = _status(s, fresh, committed_now)
        if st != "ingested":
            unstage(con, s.file_idx)
        else:
            committed_now.add(s.sha256)
        statuses.append(st)
    con.execute(f"CREATE OR REPLACE TEMP VIEW prior AS {events_sql(paths)}")
    crossrow.decide(con, payload_checker)
    summarise_findings(con)
    alerted = raised_keys(paths)
    run_id = summary.run_id
    for s, st in zip(staged, statuses, strict=True):
        if st is None:
            continue
        at = datetime.now(UTC)
        batch = build_batch(paths, con, s, _batch_id(at, s.sha256), run_id, at, st, alerted)
        if validations and st == "ingested":  # the site-run's GX results travel with its first batch
            batch.validations, validations = validations, {}
        commit(paths, batch)
        summary.batches.append(batch.ledger)
        if batch.alerts is not None:
            summary.alerts.extend(batch.alerts.to_pylist())


def validate_file(paths: Paths, study: Study, file: Path, site: str) -> str:
    """The query list one file would get, without storing anything."""
    f = LandingFile(site, f"{site}/{file.name}", file, file.stat().st_size, file.stat().st_mtime_ns)
    con = scratch(None)
    try:
        stager = Stager(con, checker(), study)
        s = stager.add(f, sha256_of(file), 0)
        stager.flush()
        if s.rejected is None:
            con.execute(f"CREATE OR REPLACE TEMP VIEW prior AS {events_sql(paths)}")
            crossrow.decide(con, payload_checker)
            summarise_findings(con)
        return format_query_list(site, file.name, s, query_rows_for_validation(con, s))
    finally:
        con.close()
