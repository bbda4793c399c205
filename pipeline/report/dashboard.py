"""The data-quality dashboard: ReportData (+ issue changes, Data Docs) in, one HTML document out (pure)."""

from __future__ import annotations

import pandas as pd

from pipeline.report import dq_tables
from pipeline.report.data import ReportData
from pipeline.report.datadocs import DataDocs, ValidationEntry
from pipeline.report.dq import DQStatus, IssueChanges, monitor
from pipeline.report.dq_plots import heatmap
from pipeline.report.render import DataTable, FigureBlock, Section, fmt, fmt0, fmt1, listing, pct, render_template

DQ_SECTIONS = {
    "status": "Site status",
    "changes": "Changes since the previous run",
    "weekly": "Data quality by site and week",
    "rules": "Rules that failed most",
    "validations": "Validation results (Great Expectations Data Docs)",
}
DQ_FIGURES = ("dq-rejected", "dq-completeness", "dq-lag")

DATA_DOCS_HREF = "data_docs/index.html"
HEATMAP_WEEKS = 26  # the heatmaps show the latest weeks; the tables keep them all
TABLE_WEEKS = 4  # weeks shown unfolded in the per-site-and-week table
LISTED_FAILED_VALIDATIONS = 25
TOP_RULES = 10  # rules listed under 'Rules that failed most' (more when tied with the last)


def dashboard_status(data: ReportData) -> DQStatus:
    """The monitor's findings at the report's reference time (cutoff or now)."""
    return monitor(data.table("batches"), data.study, data.reference_time)


def status_section(data: ReportData, status: DQStatus, weeks: pd.DataFrame) -> Section:
    summary = dq_tables.site_summary(data.study, data.table("batches"), weeks, status, data.reference_time)
    table = DataTable.from_frame(
        summary, "sites",
        {"rejection_rate": pct, "days_since_last_file": fmt1, "files": fmt0, "files_rejected": fmt0},
        headers={"site_id": "site", "files_rejected": "files rejected whole", "rejection_rate": "rejected %",
                 "last_file_at": "last file (UTC)", "days_since_last_file": "days since last file"})
    classes = tuple("" if s == "ok" else "flagged" for s in summary["status"])
    table = DataTable(table.columns, table.rows, table.key, classes)
    intro = (f"A site is silent after {status.silent_site_days} days without a new file; a rejection jump is a "
             "latest ingestion week with at least twice the site's earlier rejection rate and 10 points more.")
    return Section("status", DQ_SECTIONS["status"], intro=intro, tables=(("Per site, all ingestion weeks", table),))


def changes_section(changes: IssueChanges | None) -> Section:
    if changes is None:
        return Section("changes", DQ_SECTIONS["changes"], intro=(
            "Not compared: a report with an as-of cutoff describes the past, so it is not compared with the "
            "previous run and does not update the saved state."))
    previous = fmt(pd.Timestamp(changes.previous_run)) + " UTC" if changes.previous_run else ""
    intro = ("An issue is a rule broken by rows of a site's latest ingestion week, a silent site or a jump in "
             "rejections. " + (f"Compared with the previous run, of {previous}." if previous else
                               "This is the first run: every issue is new."))
    cols = ("site", "issue", "detail")
    return Section("changes", DQ_SECTIONS["changes"], intro=intro, tables=(
        (f"New ({len(changes.new)})", listing(cols, changes.new, "issues-new")),
        (f"Persisting ({len(changes.persisting)})", listing(cols, changes.persisting, "issues-persisting")),
        (f"Resolved ({len(changes.resolved)})", listing(cols, changes.resolved, "issues-resolved")),
    ))


def weekly_section(data: ReportData, weeks: pd.DataFrame) -> Section:
    files = dq_tables.files_rejected_whole(data.table("batches"))
    sites = dq_tables.site_order(data.study, weeks, files)
    specs = (
        ("dq-rejected", "rejected_share", "Rejected rows per site and week", "Reds", "rejected share", 0.0, 0.2,
         lambda v: f"{100 * v:.0f}%", pct,
         "Share of the rows received from each site in each ISO week of ingestion that were rejected (sent to "
         "quarantine). Darker is worse (the scale reaches full colour at 20% or the worst week); '–' means no "
         "rows received that week. A cell outlined in dark red with '+n file(s)' had files rejected whole "
         "(unreadable, not UTF-8, unregistered site, …): their rows were never read, so they are not in the "
         "share; they are listed under 'Files rejected whole' below."),
        ("dq-completeness", "diary_completeness", "Diary completeness per site and week", "RdYlGn",
         "diary completeness", 0.0, 1.0, lambda v: f"{100 * v:.0f}%", pct,
         "Share of enrolled, not withdrawn patient-weeks with at least one symptom report (patient diary), as "
         "known in each week of ingestion. Green is complete; '–' means no value that week."),
        ("dq-lag", "lag_p90_hours", "Reporting lag (90th percentile) per site and week", "Oranges",
         "lag p90 (hours)", 0.0, 24.0 * data.study.late_entry_days, lambda v: f"{v:.0f}", fmt,
         "90th percentile of the time between an event occurring and the site recording it, in hours, per "
         "week of ingestion; the scale reaches full colour at the late-entry limit or the worst week. Long lags "
         "delay safety signals. '–' means no value that week."),
    )
    figures = []
    all_weeks = sorted(set(weeks["iso_week"]) | set(files["iso_week"]))
    shown = all_weeks[-HEATMAP_WEEKS:]
    span = f" The latest {len(shown)} ingestion weeks are shown." if len(shown) else ""
    rejected_files = dq_tables.files_rejected_matrix(files, sites, shown)
    for key, metric, title, cmap, label, vmin, floor, text, number, caption in specs:
        matrix = dq_tables.heat_matrix(weeks, sites, metric).reindex(columns=shown) if len(weeks) \
            else pd.DataFrame(index=sites, columns=shown, dtype=float)
        numbers = DataTable.from_frame(matrix.reset_index(names="site_id"), key,
                                       {c: number for c in matrix.columns}) if len(shown) else DataTable((), ())
        marks = rejected_files if metric == "rejected_share" else None
        svg = heatmap(matrix, f"fig-{key}", cmap, label, text, vmin, vmax_floor=floor, marks=marks) \
            if len(shown) else None
        figures.append(FigureBlock(key, title, caption + span, data.provenance, svg, numbers))
    recent = weeks[weeks["iso_week"].isin(sorted(set(weeks["iso_week"]))[-TABLE_WEEKS:])]
    formats = {"lag_p50_hours": fmt1, "lag_p90_hours": fmt1, "diary_completeness": pct, "received": fmt0,
         "accepted": fmt0, "rejected": fmt0, "warnings": fmt0, "duplicates": fmt0, "late_entries": fmt0}
    headers = {"site_id": "site", "iso_week": "week", "rejected_by_rule": "rejected by rule",
                 "warnings_by_rule": "warnings by rule",
                 "late_entries": "late entries", "lag_p50_hours": "lag p50 (h)", "lag_p90_hours": "lag p90 (h)",
                 "diary_completeness": "diary complete"}
    whole = DataTable.from_frame(files, "files-rejected", headers={
        "site_id": "site", "iso_week": "week", "source_file": "file", "file_rules": "rule",
        "ingested_at": "ingested (UTC)"})
    return Section("weekly", DQ_SECTIONS["weekly"], figures=tuple(figures), tables=(
        (f"Files rejected whole ({len(files)}), latest first", whole),
        (f"Per site, latest {TABLE_WEEKS} ingestion weeks", DataTable.from_frame(recent, "weeks-recent", formats,
                                                                                  headers)),
    ), more=(("Per site, every ingestion week", DataTable.from_frame(weeks, "weeks", formats, headers)),))


def rules_section(data: ReportData) -> Section:
    quarantine = data.table("quarantine")
    top = dq_tables.top_rules(quarantine, TOP_RULES)
    tables: list[tuple[str, DataTable]] = [("Rules by rejected rows or files", DataTable.from_frame(
        top, "top-rules", {"rows": fmt0, "sites": fmt0}, headers={"rows": "rows or files", "last_seen": "last seen"}))]
    for rule in top["rule"]:
        examples = dq_tables.rule_examples(quarantine, str(rule))
        tables.append((f"Examples: {rule}", DataTable.from_frame(
            examples, f"examples-{rule}", {"source_row": fmt0},
            headers={"site_id": "site", "source_file": "file", "source_row": "row", "event_id": "event",
                     "raw": "original record (as sent)"})))
    intro = (f"The {TOP_RULES} rules that rejected the most rows or files, and every rule tied with the "
             f"{TOP_RULES}th (site_mismatch and phi_in_comment first among equals). Each rejected row lists "
             "every rule it broke; the examples are the latest rows per rule, shown exactly as the site sent "
             "them.") if len(top) else "No row or file has been rejected."
    return Section("rules", DQ_SECTIONS["rules"], intro=intro, tables=tuple(tables))


def failed_validations(docs: DataDocs | None) -> list[ValidationEntry]:
    """Validation results with failed expectations (or that could not be read), latest batches first."""
    if docs is None:
        return []
    failed = [e for e in docs.entries if e.success is not True]
    return sorted(failed, key=lambda e: (e.batch_id, e.site_id, e.suite_name), reverse=True)


def render_dq_dashboard(data: ReportData, changes: IssueChanges | None, docs: DataDocs | None,
                        status: DQStatus | None = None, docs_href: str = DATA_DOCS_HREF) -> str:
    """The data-quality dashboard as one HTML document (inline CSS and SVG, no scripts, no external references)."""
    status = status or dashboard_status(data)
    weeks = dq_tables.week_table(data.study, data.table("dq_site_week"), data.table("quarantine"))
    sections = [
        status_section(data, status, weeks),
        changes_section(changes),
        weekly_section(data, weeks),
        rules_section(data),
        Section("validations", DQ_SECTIONS["validations"]),
    ]
    return render_template("dq_dashboard.html.j2", data=data, sections=sections, status=status, docs=docs,
                           docs_href=docs_href, failed_validations=failed_validations(docs),
                           listed_failed=LISTED_FAILED_VALIDATIONS,
                           title=f"{data.study.study_id} — data-quality dashboard")
