"""The plain-text summary that goes with the weekly reports to the study team (pipeline.notify.reports).

Numbers and codes only: patients enrolled by arm, the red-flag alerts raised since the last report
(unvalidated first; flag, site, patient code, times, event id, never a message or a comment), the
sites the data-quality check flags, and the rows rejected in the ISO week of the report.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from pipeline.report import outcome_tables as tables
from pipeline.report.dashboard import dashboard_status
from pipeline.report.data import ReportData
from pipeline.report.dq import iso_week

MAX_ALERT_LINES = 50


def one_line(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return "-"
    return "".join(c if c.isprintable() else " " for c in str(value)).strip() or "-"


def utc(ts: object) -> str:
    if ts is None or pd.isna(ts):  # type: ignore[call-overload]
        return "-"
    t = pd.Timestamp(ts)  # type: ignore[arg-type]
    return f"{(t.tz_convert('UTC') if t.tzinfo else t):%Y-%m-%d %H:%M} UTC"


def enrolled_by_arm(data: ReportData) -> list[str]:
    t = tables.enrolment(data.study, data.table("trajectory"), data.table("patient_week"),
                         data.table("red_flag_occurrences"), data.table("recovery_summary"))
    total = t[t["site"] == "total"].iloc[0]
    arms = [c for c in t.columns if c not in ("site", "total")]
    return [f"  {one_line(a)}: {int(total[a])}" for a in arms] + [f"  total: {int(total['total'])}"]


def alert_lines(data: ReportData, since: datetime | None) -> tuple[str, list[str]]:
    alerts = data.table("alerts")
    raised = pd.to_datetime(alerts["raised_at"], utc=True)
    keep = (raised > pd.Timestamp(since)) if since is not None else pd.Series(True, index=alerts.index)
    new = alerts[keep & (raised <= pd.Timestamp(data.reference_time))].assign(_raised=raised)
    new = new.sort_values(["validated", "_raised", "site_id", "patient_id", "event_id", "flag"], na_position="last")
    unvalidated = int((~new["validated"].astype(bool)).sum())
    head = (f"Red-flag alerts since the last report ({utc(since) if since else 'the first report'}): "
            f"{len(new)}, {unvalidated} of them UNVALIDATED")
    lines = [f"  {'UNVALIDATED' if not bool(a.validated) else 'validated  '}  {one_line(a.flag)}  site "
             f"{one_line(a.site_id)}  patient {one_line(a.patient_id)}  occurred {utc(a.occurred_at)}  "
             f"event {one_line(a.event_id)}" for a in new.head(MAX_ALERT_LINES).itertuples()]
    if len(new) > MAX_ALERT_LINES:
        lines.append(f"  ... and {len(new) - MAX_ALERT_LINES} more (alerts.csv beside the reports)")
    return head, lines


def flagged_lines(data: ReportData) -> list[str]:
    status = dashboard_status(data)
    lines = [f"  silent (>= {status.silent_site_days} days): {s}" for s in status.silent_sites]
    lines += [f"  rejection jump: {j}" for j in status.rejection_jumps]
    return [f"Sites flagged by the data-quality check: {len(lines)}", *(lines or ["  none"])]


def rejected_lines(data: ReportData) -> list[str]:
    week = iso_week(data.reference_time)
    b = data.table("batches")
    at = pd.to_datetime(b["ingested_at"], utc=True)
    in_week = pd.Series([iso_week(t) == week for t in at], index=b.index, dtype=bool)
    b = b[in_week & (at <= pd.Timestamp(data.reference_time))]
    received = int(b["received"].fillna(0).sum()) if len(b) else 0
    rejected = int(b["rejected"].fillna(0).sum()) if len(b) else 0
    lines = [f"Rows rejected this week ({week}, by ingestion time): {rejected} of {received} received"]
    if len(b):
        per_site = b.groupby("site_id")[["received", "rejected"]].sum()
        lines += [f"  {one_line(site)}: {int(r.rejected)} of {int(r.received)}" for site, r in per_site.iterrows()]
    return lines


def mail_summary(data: ReportData, since: datetime | None, attached: list[str]) -> str:
    """The body of the report mail."""
    head, alerts = alert_lines(data, since)
    lines = [f"Study {one_line(data.study.study_id)}: weekly report {iso_week(data.reference_time)}, "
             f"{data.as_of_label}; event-log fingerprint {one_line(data.fingerprint or 'n/a')}.", "",
             "Patients enrolled, by arm:", *enrolled_by_arm(data), "", head, *(alerts or ["  none"]), "",
             *flagged_lines(data), "", *rejected_lines(data), "",
             f"Attached: {', '.join(attached)}.", "Sent by trialpipe once per report week."]
    return "\n".join(lines) + "\n"
