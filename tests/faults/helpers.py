"""A small study ingested once and copied per test; the command line run as a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb

from pipeline.derive.build import TABLES
from tests.ingest.helpers import Deployment, enrollment, event, make_deployment, symptom


def deliver_first(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2"), symptom("E3", leg_pain_nrs=11,
                                                                            bladder_dysfunction=True)])
    dep.deliver("NL01", "b.jsonl", [symptom(f"S{i}", occurred=f"2026-01-{6 + i:02d}T09:00:00Z") for i in range(5)])
    dep.deliver("NL02", "c.parquet", [enrollment("E9", site="NL02", patient="P9")])


def deliver_second(dep: Deployment, tag: str = "") -> None:
    """More events for both sites, among them a red flag: every derived table changes."""
    dep.deliver("NL01", f"d{tag}.csv", [symptom(f"T{tag}{i}", occurred=f"2026-02-{2 + i:02d}T09:00:00Z", leg=2 + i % 3)
                                        for i in range(6)])
    dep.deliver("NL02", f"e{tag}.csv", [
        symptom(f"U{tag}1", patient="P9", site="NL02", occurred="2026-01-12T09:00:00Z"),
        event(f"U{tag}2", "red_flag", patient="P9", site="NL02", occurred="2026-01-13T09:00:00Z",
              flag="progressive_motor_deficit"),
    ])


def copy_deployment(src: Deployment, root: Path) -> Deployment:
    shutil.copytree(src.root, root, symlinks=True)
    dep = make_deployment(root)
    return dep


def cli(dep: Deployment, *args: str, env: dict[str, str] | None = None, timeout: float = 600,
        ) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pipeline.cli", args[0], "--study", str(dep.paths.study),
           "--landing", str(dep.paths.landing), "--warehouse", str(dep.paths.warehouse), *args[1:]]
    return subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def popen(dep: Deployment, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "pipeline.cli", args[0], "--study", str(dep.paths.study),
           "--landing", str(dep.paths.landing), "--warehouse", str(dep.paths.warehouse), *args[1:]]
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def table_digests(db: Path) -> dict[str, Any]:
    """Per derived table: row count and an order-free digest of its rows (None when trial.duckdb lacks it)."""
    out: dict[str, Any] = {}
    if not db.exists():
        return {t: None for t in TABLES}
    con = duckdb.connect(str(db), read_only=True)
    try:
        for t in TABLES:
            try:
                out[t] = con.execute(f"select count(*), md5(string_agg(r, '|' order by r)) "
                                     f"from (select x::varchar as r from {t} x)").fetchall()[0]
            except duckdb.Error:
                out[t] = None
    finally:
        con.close()
    return out


def assert_log_once(dep: Deployment) -> None:
    """No event, quarantine row, alert or batch twice; no half-written temp file."""
    for sql in ("SELECT event_id, site_id FROM events", "SELECT batch_id, source_row FROM quarantine",
                "SELECT alert_id FROM alerts", "SELECT batch_id FROM batches",
                "SELECT source_file, source_sha256 FROM batches"):
        rows = dep.q(sql)
        assert len(rows) == len(set(rows)), f"duplicates in {sql}"
    assert not list(dep.paths.warehouse.rglob(".*.tmp"))


def assert_verifies(dep: Deployment) -> None:
    run = cli(dep, "verify")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("verified:"), run.stdout
