"""A site's staging area on the warehouse volume: its scratch DuckDB and the manifest of its staged files.

`stage_site` (any worker, in parallel with other sites) fills it; `commit_sites` (one process under
the writer, possibly on another machine) reads every area of the run, site after site. The area is
`staging_dir/<run>-<site>/`, so two sites or two runs never share one; the manifest is written last
and atomically: an area without it was never completely staged.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import duckdb

from pipeline.config import Paths
from pipeline.ingest.discover import LandingFile
from pipeline.ingest.read import FileRejected
from pipeline.ingest.stage import StagedFile
from pipeline.store.commit import SAFE
from pipeline.store.files import atomic_write_bytes

MANIFEST = "manifest.json"
SCRATCH = "scratch.duckdb"


def area_name(run_id: str, folder: str) -> str:
    """`<run>-<site>`; a folder name unusable in a path gets a hash instead (two such folders never collide)."""
    site = folder if SAFE.match(folder) else "_unregistered-" + hashlib.sha256(folder.encode()).hexdigest()[:12]
    return f"{run_id}-{site}"


@dataclass
class SiteStaging:
    """One site's staged delivery: what its commit needs besides the scratch tables."""

    run_id: str
    folder: str
    work: Path
    files: list[StagedFile] = field(default_factory=list)
    validations: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: int = 0  # files of the site already in the ledger (same path and bytes)
    not_read: list[str] = field(default_factory=list)
    con: duckdb.DuckDBPyConnection | None = None  # kept open when one process stages and commits (the CLI)

    @property
    def scratch_path(self) -> Path:
        return self.work / SCRATCH


def area(paths: Paths, run_id: str, folder: str) -> Path:
    return paths.staging_dir / area_name(run_id, folder)


def _file_dict(s: StagedFile) -> dict[str, Any]:
    """Every field of the StagedFile (a field added to it travels too, if JSON can carry it)."""
    f = s.file
    doc = {k.name: getattr(s, k.name) for k in fields(StagedFile) if k.name not in ("file", "rejected")}
    doc["file"] = {"site_folder": f.site_folder, "relpath": f.relpath, "path": str(f.path), "size": f.size,
                   "mtime_ns": f.mtime_ns}
    doc["rejected"] = [s.rejected.rule, s.rejected.message] if s.rejected else None
    return doc


def _staged_file(d: dict[str, Any]) -> StagedFile:
    f = d["file"]
    landing = LandingFile(f["site_folder"], f["relpath"], Path(f["path"]), int(f["size"]), int(f["mtime_ns"]))
    rest = {k: v for k, v in d.items() if k not in ("file", "rejected")}
    return StagedFile(file=landing, rejected=FileRejected(*d["rejected"]) if d["rejected"] else None, **rest)


def save(staging: SiteStaging) -> None:
    """Write the manifest (last, atomically): the area is then complete."""
    doc = {"run_id": staging.run_id, "folder": staging.folder, "files": [_file_dict(s) for s in staging.files],
           "validations": staging.validations, "skipped": staging.skipped, "not_read": staging.not_read}
    # default=str as in the stored validation results (pipeline.store.commit): the JSON written there is the same
    atomic_write_bytes(json.dumps(doc, default=str).encode(), staging.work / MANIFEST)


def load(paths: Paths, run_id: str, folder: str) -> SiteStaging | None:
    """The staged site of a run, or None when it was not (completely) staged or is already committed."""
    work = area(paths, run_id, folder)
    try:
        doc = json.loads((work / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    if doc["run_id"] != run_id or doc["folder"] != folder:
        raise ValueError(f"staging area {work} belongs to {doc['run_id']}/{doc['folder']}, not {run_id}/{folder}")
    return SiteStaging(run_id, folder, work, [_staged_file(d) for d in doc["files"]], doc["validations"],
                       int(doc["skipped"]), list(doc["not_read"]))


def dts_order(folder: str) -> str:
    """The sort key of a site folder in the DTS processing order: its files' paths, `<folder>/<name>`, sort so.

    (Not the folder name alone: `NL-2/` sorts before `NL/`, as the CLI's `scan` orders them.)
    """
    return folder + "/"


def staged_folders(paths: Paths, run_id: str) -> list[str]:
    """The site folders completely staged (and not yet committed) in a run, in DTS order."""
    if not paths.staging_dir.is_dir():
        return []
    docs = [json.loads(m.read_text(encoding="utf-8")) for m in paths.staging_dir.glob(f"{run_id}-*/{MANIFEST}")]
    return sorted((d["folder"] for d in docs if d["run_id"] == run_id), key=dts_order)


def discard(staging: SiteStaging) -> None:
    if staging.con is not None:
        staging.con.close()
        staging.con = None
    shutil.rmtree(staging.work, ignore_errors=True)


def discard_run(paths: Paths, run_id: str) -> list[str]:
    """Remove what a run left staged (sites whose commit failed for good); the names removed."""
    if not paths.staging_dir.is_dir():
        return []
    gone = sorted(p.name for p in paths.staging_dir.glob(f"{run_id}-*") if p.is_dir())
    for name in gone:
        shutil.rmtree(paths.staging_dir / name, ignore_errors=True)
    return gone
