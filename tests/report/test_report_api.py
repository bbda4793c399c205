"""`write_reports` over a warehouse (issue 4): files written, CSV exports, state across runs, as-of cutoff."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipeline.config import Paths, Study
from pipeline.report.api import write_reports
from pipeline.report.dq import STATE_FILE
from pipeline.store.warehouse import BATCH_SCHEMA, QUARANTINE_SCHEMA, fingerprint
from tests.report.conftest import Written
from tests.report.helpers import (
    DERIVED,
    FORMULA,
    PHONE,
    SCRIPT,
    START,
    STUDY,
    make_warehouse,
    sample_tables,
    table_rows,
    write_log,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def no_pdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """PDF printing is covered once (test_report_browser); spare the other runs a browser start."""
    monkeypatch.setattr("pipeline.report.api.print_pdfs", lambda jobs: [])


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_reports_are_written_to_the_warehouse(written: Written) -> None:
    names = [p.relative_to(written.paths.reports_dir).as_posix() for p in written.files]
    assert names[:5] == ["outcome_report.html", "dq_dashboard.html", "data_docs/index.html", "alerts.csv",
                         "rejected_rows.csv"]
    for path in written.files:
        assert path.is_file() and path.stat().st_size > 0
    page = written.file("outcome_report.html").read_text(encoding="utf-8")
    assert fingerprint(written.paths) in page
    state = json.loads((written.paths.reports_dir / STATE_FILE).read_text())
    assert ["NL03", "silent_site"] in [[i["site_id"], i["rule"]] for i in state["issues"]]


def test_csv_exports_neutralise_formulas_and_keep_text(written: Written) -> None:
    rejected = _csv(written.file("rejected_rows.csv"))
    comments = {r["comment"] for r in rejected}
    assert "'" + FORMULA in comments and FORMULA not in comments and SCRIPT in comments
    assert all(not r[c].startswith(("=", "+", "-", "@")) for r in rejected for c in r)
    assert PHONE not in written.file("rejected_rows.csv").read_text(encoding="utf-8")
    alerts = _csv(written.file("alerts.csv"))
    assert [a["flag"] for a in alerts] == ["SADDLE", "BLADDER"]


@pytest.mark.usefixtures("no_pdf")
def test_dashboard_compares_issues_with_the_previous_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pipeline.report.api.render_outcome_report", lambda data: "")  # not under test here
    tables = sample_tables()
    paths = make_warehouse(tmp_path, tables, validations=False)
    write_reports(paths, STUDY)
    # NL02 delivers a clean file the next week (its rejections resolve); NL01 sends a row with a new rule
    later = START + timedelta(weeks=6, hours=1)
    write_log(pd.DataFrame([{"batch_id": "b-NL02-9", "site_id": "NL02", "status": "ingested", "received": 40,
                             "accepted": 40, "rejected": 0, "ingested_at": later}]), BATCH_SCHEMA,
              paths.batches_dir / "b-NL02-9.parquet")
    write_log(pd.DataFrame([{"batch_id": "b-NL01-5", "site_id": "NL01", "rules": ["bad_id"], "messages": ["x"],
                             "ingested_at": START + timedelta(weeks=5)}]), QUARANTINE_SCHEMA,
              paths.quarantine_dir / "site=NL01" / "extra.parquet")
    page = write_reports(paths, STUDY)[1].read_text(encoding="utf-8")
    assert table_rows(page, "issues-new") == [
        {"site": "NL01", "issue": "bad_id", "detail": "1 row(s) or file(s) in 2025-W07"}]
    resolved = {(r["site"], r["issue"]) for r in table_rows(page, "issues-resolved")}
    assert resolved == {("NL02", "naive_timestamp"), ("NL02", "rejection_jump")}
    assert ("NL03", "silent_site") in {(r["site"], r["issue"]) for r in table_rows(page, "issues-persisting")}


@pytest.mark.usefixtures("no_pdf")
def test_as_of_reads_the_derive_export_and_cuts_the_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tables = sample_tables()
    paths = make_warehouse(tmp_path, tables, validations=False)
    cutoff = START + timedelta(weeks=3)
    calls: list[object] = []

    def export(p: Paths, study: Study, fmt: str, out: Path, as_of: object = None) -> list[Path]:
        calls.append((p, study, fmt, as_of))
        early = {**tables, "trajectory": tables["trajectory"][tables["trajectory"]["week"] <= 2]}
        out.mkdir(parents=True, exist_ok=True)
        for name in DERIVED:
            early[name].to_parquet(out / f"{name}.parquet")
        return [out / f"{name}.parquet" for name in DERIVED]

    monkeypatch.setattr("pipeline.derive.api.export", export)
    out = tmp_path / "past"
    files = write_reports(paths, STUDY, out=out, as_of=cutoff)
    assert calls == [(paths, STUDY, "parquet", cutoff)] and files[0] == out / "outcome_report.html"
    page = files[0].read_text(encoding="utf-8")
    assert {r["week"] for r in table_rows(page, "trajectory")} == {"0", "1", "2"}
    assert [r["flag"] for r in table_rows(page, "alerts")] == ["BLADDER"]  # the other alert came later
    assert "as of 2025-01-27T09:00:00Z (UTC; ingestion cutoff)" in page
    summary = page.split('id="alert-summary">', 1)[1].split("</div>", 1)[0]  # the callout counts the same window
    assert "Red-flag alerts up to 2025-01-27T09:00:00Z: 1 — 1 validated, 0 UNVALIDATED." in summary
    assert fingerprint(paths, cutoff) in page and fingerprint(paths, cutoff) != fingerprint(paths)
    dashboard = files[1].read_text(encoding="utf-8")
    assert "Not compared" in dashboard and not (paths.reports_dir / STATE_FILE).exists()
    files_by_site = {r["site"]: r["files"] for r in table_rows(dashboard, "sites")}
    assert files_by_site == {"NL01": "4", "NL02": "3", "NL03": "3"}  # ledger cut at the cutoff


@pytest.mark.usefixtures("no_pdf")
def test_reports_before_anything_was_derived(tmp_path: Path) -> None:
    paths = make_warehouse(tmp_path, sample_tables(), validations=False)
    paths.db_path.unlink()
    shutil.rmtree(paths.quarantine_dir)
    files = write_reports(paths, STUDY, out=tmp_path / "r")
    assert "No data yet." in files[0].read_text(encoding="utf-8")
    dashboard = files[1].read_text(encoding="utf-8")
    assert "No validations yet." in dashboard and "No row or file has been rejected." in dashboard


def _add_file_rejected_whole(paths: Paths, site: str) -> None:
    """`site`'s only file rejected whole (unregistered_site), as ingest and derive leave it: no row number."""
    at = START + timedelta(weeks=5, hours=3)
    common = {"batch_id": "b-unregistered", "site_id": site, "source_file": f"{site}/f.csv", "ingested_at": at}
    write_log(pd.DataFrame([{**common, "status": "rejected", "file_rules": ["unregistered_site"], "received": 0,
                             "accepted": 0, "rejected": 0, "duplicates": 0, "warnings": 0}]),
              BATCH_SCHEMA, paths.batches_dir / "b-unregistered.parquet")
    write_log(pd.DataFrame([{**common, "source_row": None, "rules": ["unregistered_site"],
                             "messages": ["unregistered_site: not a registered site"]}]),
              QUARANTINE_SCHEMA, paths.quarantine_dir / f"site={site}" / "q.parquet")
    con = duckdb.connect(str(paths.db_path))
    con.execute("INSERT INTO dq_site_week (site_id, iso_week, received, accepted, rejected) VALUES (?, ?, 0, 0, 0)",
                [site, "2025-W07"])
    con.close()


@pytest.mark.usefixtures("no_pdf")
def test_a_site_folder_named_like_math_text_does_not_break_the_reports(tmp_path: Path) -> None:
    site = "Q$\\badcmd$"  # matplotlib would parse $…$ as math text and fail on \badcmd
    paths = make_warehouse(tmp_path, sample_tables(), validations=False)
    _add_file_rejected_whole(paths, site)
    files = write_reports(paths, STUDY)
    dashboard = files[1].read_text(encoding="utf-8")
    heatmap = dashboard.split('<figure id="fig-dq-rejected"', 1)[1].split("</figure>", 1)[0]
    assert f">{site}</text>" in heatmap and ">+1 file</text>" in heatmap
    assert {r["site"]: r["status"] for r in table_rows(dashboard, "sites")}[site] == "not registered"
    assert write_reports(paths, STUDY)[1] == files[1]  # and again: the ledger keeps the folder for ever


@pytest.mark.usefixtures("no_pdf")
def test_rejected_rows_csv_prints_row_numbers_as_integers(tmp_path: Path) -> None:
    paths = make_warehouse(tmp_path, sample_tables(), validations=False)
    _add_file_rejected_whole(paths, "XX99")
    write_reports(paths, STUDY)
    rows = _csv(paths.reports_dir / "rejected_rows.csv")
    numbers = [r["source_row"] for r in rows]
    assert "" in numbers  # the file rejected whole has no row number
    assert all(n == "" or n.isdigit() for n in numbers) and "2" in numbers
    assert next(r for r in rows if r["site_id"] == "XX99")["rules"] == "unregistered_site"
