"""Data-quality monitor and dashboard (issue 4): silent sites, rejection jumps, issue changes, the page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import Paths
from pipeline.report import dq_tables
from pipeline.report.dashboard import DQ_FIGURES, DQ_SECTIONS, render_dq_dashboard, weekly_section
from pipeline.report.data import ReportData, to_frame
from pipeline.report.dq import (
    DQStatus,
    RejectionJump,
    SilentSite,
    compare_issues,
    current_issues,
    dq_monitor,
    monitor,
)
from pipeline.report.outcome import OUTCOME_FIGURES, render_outcome_report
from pipeline.report.svg import label
from pipeline.store.warehouse import BATCH_SCHEMA
from tests.report.helpers import (
    FINGERPRINT,
    NOW,
    PHONE,
    SCRIPT,
    START,
    STUDY,
    assert_self_contained,
    sample_tables,
    table_rows,
    write_log,
)

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)  # Monday of 2025-W10


def _batches(rows: list[tuple[str, str, datetime, int, int]]) -> pd.DataFrame:
    return to_frame("batches", pd.DataFrame(
        [{"batch_id": f"b{i}", "site_id": s, "status": st, "ingested_at": at, "received": rec, "rejected": rej}
         for i, (s, st, at, rec, rej) in enumerate(rows)]))


def test_site_without_a_new_file_for_silent_site_days_is_silent() -> None:
    batches = _batches([
        ("NL01", "ingested", T0 - timedelta(days=8), 10, 0),
        ("NL01", "file_duplicate", T0 - timedelta(days=1), 0, 0),  # the same bytes again is not a delivery
        ("NL02", "rejected", T0 - timedelta(days=2), 0, 0),  # a file rejected whole is a delivery
        ("NL03", "ingested", T0 + timedelta(days=1), 10, 0),  # after `now`: not yet
    ])
    got = monitor(batches, STUDY, T0).silent_sites
    assert got == (SilentSite("NL01", T0 - timedelta(days=8), 8.0), SilentSite("NL03", None, None))


def test_rejection_jump_needs_twice_the_earlier_rate_and_ten_more_points() -> None:
    weeks = [T0 - timedelta(weeks=2), T0 - timedelta(weeks=1), T0]
    batches = _batches([
        *(("NL01", "ingested", at, 100, rej) for at, rej in zip(weeks, (2, 4, 25), strict=True)),  # 3% → 25%
        *(("NL02", "ingested", at, 100, rej) for at, rej in zip(weeks[1:], (10, 18), strict=True)),  # < 2×
        *(("NL03", "ingested", at, 100, rej) for at, rej in zip(weeks[1:], (1, 5), strict=True)),  # +4 points
    ])
    got = monitor(batches, STUDY, T0)
    assert got.rejection_jumps == (RejectionJump("NL01", "2025-W10", 0.25, pytest.approx(0.03), 100, 25),)
    assert not got.silent_sites
    assert "NL01: 25% of rows rejected in 2025-W10 (25/100) against 3% in earlier weeks" in got.describe()


def test_all_quiet_is_ok() -> None:
    batches = _batches([(s, "ingested", T0 - timedelta(days=1), 10, 0) for s in STUDY.site_ids])
    status = monitor(batches, STUDY, T0)
    assert status.ok and "every site delivered recently" in status.describe()


def test_dq_monitor_reads_only_the_batch_ledger(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "study.toml", tmp_path / "landing", tmp_path / "warehouse")
    batches = _batches([("NL01", "ingested", T0 - timedelta(days=1), 10, 0),
                        ("NL02", "ingested", T0 - timedelta(days=9), 10, 0)])
    write_log(batches, BATCH_SCHEMA, paths.batches_dir / "b.parquet")
    got = dq_monitor(paths, STUDY, now=T0)
    assert [s.site_id for s in got.silent_sites] == ["NL02", "NL03"] and not paths.db_path.exists()
    earlier = dq_monitor(paths, STUDY, now=T0 - timedelta(days=5))  # NL01's file had not arrived yet
    assert [s.site_id for s in earlier.silent_sites] == ["NL01", "NL03"]


def test_issues_are_rules_of_the_sites_latest_ingestion_week_and_monitor_findings() -> None:
    batches = _batches([("NL01", "ingested", T0 - timedelta(weeks=1), 10, 1), ("NL01", "ingested", T0, 10, 2)])
    quarantine = to_frame("quarantine", pd.DataFrame([
        {"site_id": "NL01", "rules": ["bad_enum"], "ingested_at": T0 - timedelta(weeks=1)},
        {"site_id": "NL01", "rules": ["out_of_range", "bad_id"], "ingested_at": T0},
        {"site_id": "NL01", "rules": ["out_of_range"], "ingested_at": T0},
    ]))
    status = DQStatus(T0, (SilentSite("NL02", None, None),), ())
    assert current_issues(quarantine, batches, status) == {
        ("NL01", "bad_id"): "1 row(s) or file(s) in 2025-W10",
        ("NL01", "out_of_range"): "2 row(s) or file(s) in 2025-W10",
        ("NL02", "silent_site"): "no file delivered yet",
    }


def test_issue_changes_since_the_previous_run() -> None:
    previous = {"generated_at": "2025-03-01T00:00:00+00:00", "issues": [
        {"site_id": "NL01", "rule": "bad_enum", "detail": "3 rows"},
        {"site_id": "NL02", "rule": "silent_site", "detail": "8 days"}]}
    got = compare_issues({("NL01", "bad_enum"): "1 row", ("NL03", "bad_id"): "2 rows"}, previous)
    assert got.new == (("NL03", "bad_id", "2 rows"),)
    assert got.persisting == (("NL01", "bad_enum", "1 row"),)
    assert got.resolved == (("NL02", "silent_site", "8 days"),)
    assert compare_issues({("NL01", "x"): ""}, None).new == (("NL01", "x", ""),)


def test_week_table_takes_rules_from_dq_site_week_or_else_from_quarantine() -> None:
    dq = to_frame("dq_site_week", pd.DataFrame([{
        "site_id": "NL01", "iso_week": "2025-W10", "rejected": 3,
        "rejected_by_rule": '{"bad_enum": 1, "out_of_range": 2}', "warnings_by_rule": "{}"}]))
    assert dq_tables.week_table(STUDY, dq, to_frame("quarantine", None)).loc[0, "rejected_by_rule"] == \
        "out_of_range 2, bad_enum 1"
    quarantine = to_frame("quarantine", pd.DataFrame([{"site_id": "NL01", "rules": ["bad_id"], "ingested_at": T0}]))
    got = dq_tables.week_table(STUDY, dq.drop(columns=["rejected_by_rule", "warnings_by_rule"]), quarantine)
    assert (got.loc[0, "rejected_by_rule"], got.loc[0, "warnings_by_rule"]) == ("bad_id 1", "")


@pytest.fixture(scope="module")
def dashboard() -> str:
    data = ReportData.build(STUDY, sample_tables(), FINGERPRINT, generated_at=NOW)
    return render_dq_dashboard(data, compare_issues({("NL01", "bad_enum"): "now"}, None), None)


def test_dashboard_has_every_section_and_heatmap_with_provenance(dashboard: str) -> None:
    for key, title in DQ_SECTIONS.items():
        assert re.search(rf'<section id="{key}">\s*<h2>{re.escape(title)}</h2>', dashboard), key
    for key in DQ_FIGURES:
        block = dashboard.split(f'<figure id="fig-{key}"', 1)[1].split("</figure>", 1)[0]
        assert "<svg " in block and FINGERPRINT in block.split("<figcaption>", 1)[1], key
    assert "No validations yet." in dashboard
    assert_self_contained(dashboard)


def test_dashboard_flags_silent_sites_and_the_rejection_jump(dashboard: str) -> None:
    sites = {r["site"]: r for r in table_rows(dashboard, "sites")}
    assert sites["NL03"]["status"] == "silent" and sites["NL03"]["days since last file"] == "23.9"
    assert sites["NL02"]["status"] == "rejection jump"
    assert table_rows(dashboard, "issues-new") == [{"site": "NL01", "issue": "bad_enum", "detail": "now"}]


def test_dashboard_withholds_comments_rejected_as_phi(dashboard: str) -> None:
    examples = table_rows(dashboard, "examples-phi_in_comment")
    assert PHONE not in dashboard
    assert "[withheld by trialpipe: possible PHI]" in examples[0]["original record (as sent)"]


def test_dashboard_shows_failed_rows_exactly_as_sent(dashboard: str) -> None:
    assert SCRIPT not in dashboard and "<script" not in dashboard
    raw = [r["original record (as sent)"] for r in table_rows(dashboard, "examples-out_of_range")]
    assert f'"comment": "{SCRIPT}"' in raw[0]
    top = table_rows(dashboard, "top-rules")
    assert top[0] == {"rule": "naive_timestamp", "rows or files": "22", "sites": "1", "last seen": "2025-02-10 10:00"}


def test_heatmap_numbers_follow_dq_site_week(dashboard: str) -> None:
    tables = sample_tables()
    tables["dq_site_week"].loc[0, "lag_p90_hours"] = 123.0
    data = ReportData.build(STUDY, tables, FINGERPRINT, generated_at=NOW)
    weeks = dq_tables.week_table(STUDY, data.table("dq_site_week"), data.table("quarantine"))
    lag = weekly_section(data, weeks).figures[2]
    assert lag.key == "dq-lag" and lag.numbers.rows[0][1] == "123.00"
    assert table_rows(dashboard, "dq-lag")[0]["2025-W02"] == "40.00"
    assert str(lag.svg) not in dashboard


def _with_files_rejected_whole() -> dict[str, pd.DataFrame]:
    """The sample study plus XX99, whose only file was rejected whole, and a file of NL01 rejected whole."""
    tables = sample_tables()
    at = START + timedelta(weeks=5, hours=2)  # NL01's and NL02's last ingestion week, 2025-W07
    files = [("XX99", "XX99/week5.csv", "unregistered_site"), ("NL01", "NL01/week5_b.csv.gz", "unreadable")]
    tables["batches"] = pd.concat([tables["batches"], pd.DataFrame([
        {"batch_id": f"b-{site}-whole", "site_id": site, "source_file": path, "status": "rejected",
         "file_rules": [rule], "received": 0, "accepted": 0, "rejected": 0, "duplicates": 0, "warnings": 0,
         "unknown_columns": [], "ingested_at": at} for site, path, rule in files])], ignore_index=True)
    tables["quarantine"] = pd.concat([tables["quarantine"], pd.DataFrame([
        {"batch_id": f"b-{site}-whole", "site_id": site, "source_file": path, "source_row": None,
         "event_id": None, "rules": [rule], "messages": [f"{rule}: the whole file"], "raw": None,
         "ingested_at": at} for site, path, rule in files])], ignore_index=True)
    tables["dq_site_week"] = pd.concat([tables["dq_site_week"], pd.DataFrame([
        {"site_id": "XX99", "iso_week": "2025-W07", "received": 0, "accepted": 0, "rejected": 0, "warnings": 0,
         "duplicates": 0, "late_entries": 0}])], ignore_index=True)
    return tables


def test_rejected_rows_heatmap_shows_files_rejected_whole() -> None:
    data = ReportData.build(STUDY, _with_files_rejected_whole(), FINGERPRINT, generated_at=NOW)
    page = render_dq_dashboard(data, None, None)
    figure = page.split('<figure id="fig-dq-rejected"', 1)[1].split("</figure>", 1)[0]
    caption = figure.split("<figcaption>", 1)[1]
    assert "means no rows received that week" in caption and "no file that week" not in page
    assert "files rejected whole" in caption
    assert figure.count(">+1 file</text>") == 2  # NL01 (rows and a file) and XX99 (only the file)
    numbers = {r["site_id"]: r["2025-W07"] for r in table_rows(page, "dq-rejected")}
    assert numbers["XX99"] == "–" and numbers["NL01"] == "5.0%"
    assert table_rows(page, "files-rejected") == [
        {"site": "NL01", "week": "2025-W07", "file": "NL01/week5_b.csv.gz", "rule": "unreadable",
         "ingested (UTC)": "2025-02-10 11:00"},
        {"site": "XX99", "week": "2025-W07", "file": "XX99/week5.csv", "rule": "unregistered_site",
         "ingested (UTC)": "2025-02-10 11:00"}]


def test_heatmap_numbers_print_shares_as_percentages() -> None:
    tables = sample_tables()
    first = tables["dq_site_week"].index[0]
    tables["dq_site_week"].loc[first, ["received", "rejected", "diary_completeness"]] = [600, 7, 0.96]
    data = ReportData.build(STUDY, tables, FINGERPRINT, generated_at=NOW)
    page = render_dq_dashboard(data, None, None)
    assert table_rows(page, "dq-rejected")[0]["2025-W02"] == "1.2%"  # 7/600 = 1.17%, not '0.01'
    assert table_rows(page, "dq-completeness")[0]["2025-W02"] == "96.0%"


def test_rules_tied_with_the_tenth_are_all_listed_security_and_phi_first() -> None:
    counts = {f"rule_{i:02d}": 5 for i in range(9)} | {"aaa_rule": 2, "phi_in_comment": 2, "site_mismatch": 2,
                                                        "zzz_once": 1}
    quarantine = to_frame("quarantine", pd.DataFrame(
        [{"site_id": "NL01", "rules": [rule], "ingested_at": T0} for rule, n in counts.items() for _ in range(n)]))
    top = dq_tables.top_rules(quarantine, 10)
    assert list(top["rule"]) == [*(f"rule_{i:02d}" for i in range(9)), "site_mismatch", "phi_in_comment", "aaa_rule"]
    assert "zzz_once" not in set(top["rule"])
    page = render_dq_dashboard(ReportData.build(STUDY, {"quarantine": quarantine}, FINGERPRINT, generated_at=T0),
                               None, None)
    assert [r["rule"] for r in table_rows(page, "top-rules")] == list(top["rule"])


EVIL_SITE = 'Q$\\badcmd$ <b id="x">&'  # a landing folder name: math text, markup, an id, an ampersand
EVIL_SVG = 'Q$\\badcmd$ &lt;b id="x"&gt;&amp;'  # how the SVG must carry it: escaped, otherwise untouched


def _evil(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """NL03 renamed to EVIL_SITE everywhere (an unregistered site), and a modality with math text."""
    out = {}
    for name, frame in tables.items():
        frame = frame.copy()
        for col in ("site_id", "stratum"):
            if col in frame.columns:
                frame[col] = frame[col].replace("NL03", EVIL_SITE)
        out[name] = frame
    out["treatment_flares"]["modality"] = out["treatment_flares"]["modality"].replace(
        "dry_needling", "dry $\\needling$")
    return out


def test_free_text_with_dollar_signs_and_markup_is_drawn_literally_in_every_figure() -> None:
    data = ReportData.build(STUDY, _evil(sample_tables()), FINGERPRINT, generated_at=NOW)
    dashboard = render_dq_dashboard(data, None, None)
    outcome = render_outcome_report(data)
    for page, keys in ((dashboard, DQ_FIGURES), (outcome, OUTCOME_FIGURES)):
        for key in keys:
            assert "<svg " in page.split(f'<figure id="fig-{key}"', 1)[1].split("</figure>", 1)[0], key
    for page, key in ((dashboard, "dq-rejected"), (dashboard, "dq-lag"), (outcome, "forest")):
        svg = page.split(f'<figure id="fig-{key}"', 1)[1].split("</svg>", 1)[0]
        assert EVIL_SVG in svg, key
    flares = outcome.split('<figure id="fig-flares"', 1)[1].split("</svg>", 1)[0]
    assert "dry $\\needling$ (n=" in flares
    assert "<b " not in dashboard and "<b " not in outcome


def test_figure_labels_replace_control_characters_and_shorten_long_text() -> None:
    assert label("NL\x0701\n") == "NL\ufffd01\ufffd"
    assert label("x" * 100) == "x" * 39 + "…" and label("$a$") == "$a$"
