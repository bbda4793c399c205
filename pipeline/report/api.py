"""`trialpipe report`: read the warehouse, render the reports, write them (and their PDF copies).

Files written to ``out`` (default ``<warehouse>/reports/``):

* ``outcome_report.html`` (+ ``.pdf``) — the outcome report;
* ``dq_dashboard.html`` (+ ``.pdf``) — the data-quality dashboard;
* ``data_docs/index.html`` and ``data_docs/validations/<site>/<batch>.html`` — GX Data Docs;
* ``alerts.csv``, ``rejected_rows.csv`` — listings for spreadsheets, formula-safe.

The issue state the dashboard compares against lives in ``<warehouse>/reports/dq_state.json``
and is updated by current reports only (no ``as_of``).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.config import Paths, Study
from pipeline.report.dashboard import DATA_DOCS_HREF, dashboard_status, render_dq_dashboard
from pipeline.report.data import ReportData, load_report_data
from pipeline.report.datadocs import build_data_docs
from pipeline.report.dq import compare_issues, current_issues, load_state, save_state
from pipeline.report.escape import redact_phi, write_csv
from pipeline.report.outcome import render_outcome_report
from pipeline.report.outcome_tables import alert_listing
from pipeline.report.pdf import PrintJob, print_pdfs
from pipeline.store.crash import crashpoint
from pipeline.store.files import atomic_write_bytes

log = logging.getLogger(__name__)

OUTCOME_HTML = "outcome_report.html"
DQ_HTML = "dq_dashboard.html"
DATA_DOCS_DIR = "data_docs"


def _write_text(text: str, path: Path) -> Path:
    atomic_write_bytes(text.encode("utf-8"), path)
    return path


def comment_of(raw: Any) -> str | None:
    """The site's comment from a quarantined record (JSON text), when it has one."""
    try:
        record = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    value = record.get("comment") if isinstance(record, dict) else None
    return None if value is None else str(value)


def write_listings(data: ReportData, out: Path) -> list[Path]:
    """Alerts and rejected rows as CSV for spreadsheets (site text neutralised)."""
    quarantine = data.table("quarantine").sort_values(["ingested_at", "site_id", "source_file", "source_row"])
    raw = [redact_phi(r, rules) for r, rules in zip(quarantine["raw"], quarantine["rules"], strict=True)]
    # a file rejected whole has no row number: the column then reads back as float; print 1548, not 1548.0
    quarantine = quarantine.assign(raw=raw, comment=[comment_of(r) for r in raw],
                                   source_row=quarantine["source_row"].astype("Int64"))
    return [
        write_csv(alert_listing(data.table("alerts")), out / "alerts.csv"),
        write_csv(quarantine, out / "rejected_rows.csv",
                  ["ingested_at", "site_id", "source_file", "source_row", "event_id", "rules", "messages", "comment",
                   "raw", "batch_id", "source_sha256"]),
    ]


def render_reports(paths: Paths, data: ReportData, out: Path) -> list[Path]:
    """Write every report for already loaded data; returns the paths written (PDFs last, when possible)."""
    out.mkdir(parents=True, exist_ok=True)
    batch_ids = None if data.as_of is None else {str(b) for b in data.table("batches")["batch_id"]}
    docs = build_data_docs(paths.validations_dir, out / DATA_DOCS_DIR, batch_ids)
    status = dashboard_status(data)
    issues = current_issues(data.table("quarantine"), data.table("batches"), status)
    changes = compare_issues(issues, load_state(paths)) if data.as_of is None else None
    outcome = _write_text(render_outcome_report(data), out / OUTCOME_HTML)
    crashpoint("report_writing")
    dashboard = _write_text(render_dq_dashboard(data, changes, docs, status, DATA_DOCS_HREF), out / DQ_HTML)
    written = [outcome, dashboard]
    if docs.index is not None:
        written.append(docs.index)
    written += write_listings(data, out)
    if data.as_of is None:
        save_state(paths, issues, data.generated_at, data.fingerprint)
    written += print_pdfs([PrintJob(outcome, outcome.with_suffix(".pdf")),
                           PrintJob(dashboard, dashboard.with_suffix(".pdf"), landscape=True)])
    return written


def write_reports(paths: Paths, study: Study, out: Path | None = None, as_of: datetime | None = None) -> list[Path]:
    """Write the outcome report, the data-quality dashboard, Data Docs, CSV listings and PDF copies.

    With `as_of`, derived tables come from `pipeline.derive.api.export` at that cutoff and the alert log,
    quarantine and ledger are cut at it too; the issue state is then neither compared nor saved.
    """
    data = load_report_data(paths, study, as_of)
    return render_reports(paths, data, Path(out) if out is not None else paths.reports_dir)
