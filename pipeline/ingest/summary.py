"""What an ingest run did, per file: for the terminal, for XCom and for tests."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

import duckdb

from pipeline.config import Paths
from pipeline.store.warehouse import dataset_sql


@dataclass
class IngestSummary:
    run_id: str
    batches: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0  # landing files (in scope) already in the ledger: same path and bytes
    not_read: list[str] = field(default_factory=list)  # subfolders and links in site folders (never read)

    def total(self, key: str) -> int:
        return sum(int(b.get(key) or 0) for b in self.batches)

    def by_site(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for b in self.batches:
            s = out.setdefault(b["site_id"], {"files": 0, "received": 0, "accepted": 0, "rejected": 0,
                                              "duplicates": 0, "warnings": 0, "files_rejected": 0})
            s["files"] += 1
            for k in ("received", "accepted", "rejected", "duplicates", "warnings"):
                s[k] += int(b.get(k) or 0)
            s["files_rejected"] += b["status"] == "rejected"
        return out

    def to_dict(self) -> dict[str, Any]:
        keep = ("batch_id", "site_id", "source_file", "status", "received", "accepted", "rejected", "duplicates",
                "warnings", "file_rules", "message")
        return {
            "run_id": self.run_id,
            "batches": [{k: b.get(k) for k in keep} for b in self.batches],
            "by_site": self.by_site(),
            "alerts": [{k: str(v) if v is not None else None for k, v in a.items()} for a in self.alerts],
            "skipped": self.skipped,
            "not_read": self.not_read,
        }


def stored_summary(paths: Paths, run_id: str) -> IngestSummary:
    """What the ledger says a run stored: its batches in commit order and the alerts they raised.

    Read back rather than handed on, so that it counts the sites of every try of a retried task, also
    those a crashed or failed try committed.
    """
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        batches = con.sql(f"SELECT * FROM ({dataset_sql(paths, 'batches')}) WHERE run_id = $run "
                          "ORDER BY chain_seq, ingested_at, batch_id", params={"run": run_id}).to_arrow_table()
        rows = batches.to_pylist()
        for b in rows:
            b["rule_counts"] = dict(b["rule_counts"] or [])  # Arrow hands a map on as (key, value) pairs
        raised = con.sql(f"SELECT * FROM ({dataset_sql(paths, 'alerts')}) WHERE list_contains($ids, batch_id) "
                         "ORDER BY raised_at, alert_id", params={"ids": [b["batch_id"] for b in rows]}
                         ).to_arrow_table().to_pylist() if rows else []
    finally:
        con.close()
    return IngestSummary(run_id, batches=rows, alerts=raised)


def print_summary(summary: IngestSummary, out: TextIO | None = None) -> None:
    out = out if out is not None else sys.stdout  # looked up now: sys.stdout may have been replaced since import
    for entry in summary.not_read:
        out.write(f"NOT READ: {entry} (only files directly in a site folder are read; links are never followed)\n")
    if not summary.batches:
        out.write(f"ingest: nothing new ({summary.skipped} file(s) already ingested)\n")
        return
    out.write(f"ingest run {summary.run_id}: {len(summary.batches)} file(s)\n")
    for b in summary.batches:
        if b["status"] == "ingested":
            out.write(f"  {b['source_file']}: received {b['received']}, accepted {b['accepted']}, "
                      f"rejected {b['rejected']}, duplicates {b['duplicates']}, warnings {b['warnings']}\n")
        else:
            out.write(f"  {b['source_file']}: {b['status'].upper()} ({', '.join(b['file_rules'])})"
                      f"{': ' + b['message'] if b.get('message') else ''}\n")
    out.write(f"  total: received {summary.total('received')}, accepted {summary.total('accepted')}, "
              f"rejected {summary.total('rejected')}, duplicates {summary.total('duplicates')}\n")
    mismatched: dict[str, int] = {}
    for b in summary.batches:
        n = (b.get("rule_counts") or {}).get("site_mismatch", 0)
        mismatched[b["site_id"]] = mismatched.get(b["site_id"], 0) + n
    for site, n in sorted(mismatched.items()):
        if n:
            out.write(f"SECURITY: {n} row(s) delivered by {site} name another site (site_mismatch, quarantined)\n")
    if summary.alerts:
        out.write(f"RED-FLAG ALERTS raised in this run: {len(summary.alerts)} (table `alerts`)\n")
        for a in summary.alerts:
            out.write(f"  ! {a['site_id']} patient {a['patient_id']} {a['flag']}: {a['message']}\n")
