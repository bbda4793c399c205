"""Find delivered files in the landing zone, never trusting names from outside.

Only regular files directly inside `landing/<site>/` are considered; links and
anything that resolves outside the landing zone are skipped. Files still being
written (`.name`, `*.tmp`, `*.part`) wait until they are renamed.
"""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline.config import Paths, Study
from pipeline.store.warehouse import dataset_sql

FORMATS = (".csv.gz", ".jsonl.gz", ".csv", ".jsonl", ".parquet")


@dataclass(frozen=True)
class LandingFile:
    site_folder: str
    relpath: str  # relative to the landing zone, '/'-separated; the processing order key
    path: Path
    size: int
    mtime_ns: int


def is_in_progress(name: str) -> bool:
    return name.startswith(".") or name.lower().endswith((".tmp", ".part"))  # `.PART` is still being written


def file_format(name: str) -> str | None:
    """'csv', 'csv.gz', 'jsonl', 'jsonl.gz' or 'parquet'; None for anything else."""
    lower = name.lower()
    for ext in FORMATS:
        if lower.endswith(ext):
            return ext[1:]
    return None


def scan(landing: Path) -> list[LandingFile]:
    """Every delivered file under landing/<folder>/, in lexicographic order of relpath."""
    if not landing.is_dir():
        return []
    root = landing.resolve()
    found: list[LandingFile] = []
    for folder in sorted(root.iterdir(), key=lambda p: p.name):
        if folder.is_symlink() or not folder.is_dir() or is_in_progress(folder.name):
            continue
        for entry in sorted(folder.iterdir(), key=lambda p: p.name):
            if is_in_progress(entry.name):
                continue
            st = entry.lstat()
            if not stat.S_ISREG(st.st_mode):  # links, folders, devices: never followed
                continue
            if entry.resolve().parent != folder:
                continue
            found.append(LandingFile(folder.name, f"{folder.name}/{entry.name}", entry, st.st_size, st.st_mtime_ns))
    return sorted(found, key=lambda f: f.relpath)


def not_picked_up(landing: Path) -> list[str]:
    """What sits in a site folder but is never read: subfolders, links and other non-files.

    scan() skips them (links are never followed: a site writes only its own folder); they are
    listed so that the run summary says so instead of leaving them unseen.
    """
    if not landing.is_dir():
        return []
    out = []
    for folder in sorted(landing.iterdir(), key=lambda p: p.name):
        if folder.is_symlink() or not folder.is_dir() or is_in_progress(folder.name):
            continue
        for entry in sorted(folder.iterdir(), key=lambda p: p.name):
            if not is_in_progress(entry.name) and not stat.S_ISREG(entry.lstat().st_mode):
                out.append(f"{folder.name}/{entry.name}")
    return out


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Ledger:
    """What the committed batches say about files seen before."""

    seen: dict[tuple[str, int, int], str]  # (relpath, size, mtime_ns) -> sha of a processed delivery
    seen_pairs: frozenset[tuple[str, str]]  # (relpath, sha256) already processed
    # (site folder, sha256) of bytes that were read (not rejected whole): the same bytes in another
    # site's folder are read again, so rows naming the first site are rejected as site_mismatch
    ingested: frozenset[tuple[str, str]]


def read_ledger(paths: Paths) -> Ledger:
    con = duckdb.connect()
    cols = "source_file, source_sha256, status, source_size, source_mtime_ns"
    rows = con.execute(f"SELECT {cols} FROM ({dataset_sql(paths, 'batches')})").fetchall()
    seen = {(r[0], int(r[3]), int(r[4])): r[1] for r in rows if r[3] is not None and r[4] is not None}
    return Ledger(
        seen=seen,
        seen_pairs=frozenset((r[0], r[1]) for r in rows),
        ingested=frozenset((r[0].split("/", 1)[0], r[1]) for r in rows if r[2] == "ingested"),
    )


def identify(f: LandingFile, ledger: Ledger) -> str:
    """SHA-256 of the file, reusing the ledger's when path, size and mtime are unchanged."""
    known = ledger.seen.get((f.relpath, f.size, f.mtime_ns))
    return known if known is not None else sha256_of(f.path)


def new_files(paths: Paths, ledger: Ledger | None = None) -> list[tuple[LandingFile, str]]:
    """Files (with their SHA-256) whose (path, bytes) were not processed before."""
    ledger = ledger or read_ledger(paths)
    out = []
    for f in scan(paths.landing):
        sha = identify(f, ledger)
        if (f.relpath, sha) not in ledger.seen_pairs:
            out.append((f, sha))
    return out


def sites_with_new_files(paths: Paths, study: Study) -> list[str]:
    """Registered sites with something new to ingest (unregistered folders are ingested as rejections)."""
    folders = {f.site_folder for f, _ in new_files(paths)}
    registered = [s for s in study.site_ids if s in folders]
    return registered + sorted(folders - set(study.site_ids))
