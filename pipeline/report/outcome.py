"""The outcome report: ReportData in, one self-contained HTML document out (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from markupsafe import Markup

from pipeline.report import outcome_plots as plots
from pipeline.report import outcome_tables as tables
from pipeline.report.data import ReportData
from pipeline.report.render import (
    DataTable,
    FigureBlock,
    Section,
    fmt,
    fmt0,
    fmt1,
    fmt3,
    interval,
    listing,
    pct,
    pvalue,
    render_template,
)

#: Section headings, in report order (tests check every one is present).
OUTCOME_SECTIONS = {
    "enrolment": "Enrolment by site and arm",
    "trajectory": "Leg-pain trajectory",
    "improvement": "Centralisation and improvement signs",
    "recovery": "Time to recovery",
    "red-flags": "Red flags",
    "flares": "Post-treatment flares",
    "alerts": "Alerts",
}
#: Figure keys (element ids are fig-<key>).
OUTCOME_FIGURES = ("enrolment", "trajectory", "centralisation", "improvement", "km", "forest", "flares")


def _figure(data: ReportData, key: str, title: str, caption: str, svg: Markup | None,
            numbers: DataTable) -> FigureBlock:
    return FigureBlock(key, title, caption, data.provenance, svg, numbers)


def enrolment_section(data: ReportData) -> Section:
    t = tables.enrolment(data.study, data.table("trajectory"), data.table("patient_week"),
                         data.table("red_flag_occurrences"), data.table("recovery_summary"))
    arms = [c for c in t.columns if c not in ("site", "total")]
    names = data.site_names
    shown = t.assign(site=[f"{s} – {names[s]}" if s in names and names[s] != s else s for s in t["site"]])
    numbers = DataTable.from_frame(t, "enrolment", {a: fmt0 for a in [*arms, "total"]})
    fig = _figure(
        data, "enrolment", "Patients enrolled, by site and arm",
        "Number of randomised patients per site, split by arm (bars stacked by arm). Patients are counted from "
        "the derived patient-level tables; patients without any observation yet are on their own row.",
        plots.enrolment_figure(t, arms, "fig-enrolment"), numbers)
    return Section("enrolment", OUTCOME_SECTIONS["enrolment"], figures=(fig,),
                   tables=(("Patients by site and arm", DataTable.from_frame(
                       shown, "enrolment-table", {a: fmt0 for a in [*arms, "total"]})),))


def trajectory_section(data: ReportData, arms: list[str]) -> Section:
    traj = data.table("trajectory")
    means = tables.legpain_means(traj)
    sample = tables.legpain_sample(traj)
    n_sample = sample.groupby("arm")["patient_id"].nunique().to_dict() if len(sample) else {}
    sample_txt = ", ".join(f"{n} in {a}" for a, n in n_sample.items()) or "none"
    fig = _figure(
        data, "trajectory", "Mean leg pain per week, by arm",
        "Mean leg-pain score (0–10) per analysis week and arm (thick lines) with 95% confidence bands "
        "(t distribution); thin lines are individual patients (" + sample_txt + "), chosen by a fixed hash of "
        "the patient id, not by outcome. Week 0 is the baseline window (study days −14 to 0).",
        plots.trajectory_figure(means, sample, arms, "fig-trajectory"),
        DataTable.from_frame(means, "trajectory", {"n": fmt0, "mean": fmt, "ci_low": fmt, "ci_high": fmt}))
    return Section("trajectory", OUTCOME_SECTIONS["trajectory"], figures=(fig,))


def improvement_section(data: ReportData, arms: list[str]) -> Section:
    pw = data.table("patient_week")
    cent = tables.centralisation_shares(pw)
    signs = tables.improvement_shares(pw)
    share_fmt = {c: pct for c in (*tables.CENTRALIZATION, *tables.SIGN_GROUPS, "two_or_more")}
    f1 = _figure(
        data, "centralisation", "Centralisation per week, by arm",
        "Share of patients per analysis week whose most distal point of pain moved toward the back "
        "(centralised), stayed, or moved down the leg (peripheralised), compared with their baseline. "
        "Only patient-weeks with both values are counted (n in the table).",
        plots.centralisation_figure(cent, arms, "fig-centralisation"),
        DataTable.from_frame(cent, "centralisation", {"n": fmt0, **share_fmt}))
    f2 = _figure(
        data, "improvement", "Improvement signs per week, by arm",
        "Share of patients per analysis week showing 0, 1, 2 or 3+ of the five signs of recovery "
        "(centralisation, strength, nerve mobility, pain fall of 2+ points, walking tolerance); "
        "two_or_more is the share with at least two.",
        plots.improvement_figure(signs, arms, "fig-improvement"),
        DataTable.from_frame(signs, "improvement", {"n": fmt0, **share_fmt}))
    return Section("improvement", OUTCOME_SECTIONS["improvement"], figures=(f1, f2))


def recovery_section(data: ReportData, arms: list[str]) -> Section:
    summary = data.table("recovery_summary")
    steps = tables.km_steps(data.table("recovery_km"))
    p = tables.logrank_p(summary)
    fig = _figure(
        data, "km", "Kaplan–Meier curves of time to recovery, by arm",
        "Proportion of patients not yet recovered (global perceived recovery 'completely' or 'nearly "
        f"completely recovered') over weeks since randomisation; ticks mark censored patients. Log-rank "
        f"p = {pvalue(p)}. The dotted line marks 50%: the median is where a curve crosses it.",
        plots.km_figure(steps, summary, arms, p, "fig-km"),
        DataTable.from_frame(steps, "km", {"time_weeks": fmt, "at_risk": fmt0, "events": fmt0, "censored": fmt0,
                                           "survival": fmt3}))
    rec = tables.recovery_table(summary)
    rec_fmt = {c: pct for c in rec.columns if c.startswith("recovered_w")}
    table = DataTable.from_frame(rec, "recovery-summary", {"n": fmt0, "events": fmt0, "median_weeks": fmt1,
                                                            "logrank_p": pvalue, **rec_fmt},
                                 headers={"median_weeks": "median (weeks)", "logrank_p": "log-rank p",
                                          **{c: "week " + c.removeprefix("recovered_w") for c in rec_fmt}})
    return Section("recovery", OUTCOME_SECTIONS["recovery"], figures=(fig,),
                   tables=(("Recovery by arm (recovered share at week 2 … 52)", table),))


def _incidence_table(frame: pd.DataFrame, key: str) -> DataTable:
    rows = []
    for r in frame.itertuples(index=False):
        rows.append((
            str(r.flag), f"{r.stratum_type}: {r.stratum}" if r.stratum_type != "overall" else "overall",
            fmt0(r.cases), fmt0(r.at_risk), fmt1(r.patient_weeks),
            interval(r.rate_per_100pw, r.rate_ci_low, r.rate_ci_high, 3),
            interval(r.proportion, r.proportion_ci_low, r.proportion_ci_high, 1, 100.0),
        ))
    cols = ("flag", "stratum", "cases", "at risk", "patient-weeks", "rate /100 pw [95% CI]", "% [95% CI]")
    return DataTable(cols, tuple(rows), key)


def red_flag_section(data: ReportData, arms: list[str]) -> Section:
    inc = data.table("red_flag_incidence")
    forest = tables.forest_rows(data.study, inc, "ANY")
    fig = _figure(
        data, "forest", "Incidence of red flags (any), by site and arm",
        "Incident red flags of any kind (first occurrence after randomisation) per 100 patient-weeks at risk, "
        "with exact Poisson 95% confidence intervals, overall (diamond, dotted line), per site and per arm. "
        "Patients with a red flag already at baseline are not at risk.",
        plots.forest_figure(forest, arms, "fig-forest"),
        DataTable.from_frame(forest, "forest", {"at_risk": fmt0, "cases": fmt0, "patient_weeks": fmt1,
                                                "rate_per_100pw": fmt3, "rate_ci_low": fmt3, "rate_ci_high": fmt3}))
    occ = data.table("red_flag_occurrences")
    notes: tuple[str, ...] = ()
    if len(occ):
        prevalent = int(occ["prevalent"].fillna(False).astype(bool).sum())
        notes = (f"{len(occ)} first occurrences of a red flag, {prevalent} of them prevalent (at or before "
                 "randomisation).",)
    by_stratum = pd.concat([tables.incidence_by_flag(data.study, inc, kind) for kind in ("site", "arm")])
    intro = ("Incidence is derived from accepted events only. " + alert_summary(data).xref)
    return Section("red-flags", OUTCOME_SECTIONS["red-flags"], intro=intro, figures=(fig,), notes=notes,
                   links=(("alerts", f"Go to {OUTCOME_SECTIONS['alerts']}"),), tables=(
        ("Incidence by flag, overall",
         _incidence_table(tables.incidence_by_flag(data.study, inc, "overall"), "incidence")),
    ), more=(("Incidence by flag, per site and per arm", _incidence_table(by_stratum, "incidence-strata")),))


def flare_section(data: ReportData) -> Section:
    summary = tables.flare_summary(data.table("treatment_flares"))
    fig = _figure(
        data, "flares", "Post-treatment flares, by modality",
        "For each treatment modality, the share of treatments followed within 7 days by a leg-pain rise of "
        "2+ points that resolved within 7 days (expected flare), lasted longer (prolonged flare), no flare, or "
        "that had no pain report in the 7 days before (no baseline).",
        plots.flare_figure(summary, "fig-flares"),
        DataTable.from_frame(summary, "flares", {"flare_share": pct, "median_duration_days": fmt1,
                                                 "median_rise": fmt1}))
    return Section("flares", OUTCOME_SECTIONS["flares"], figures=(fig,))


@dataclass(frozen=True)
class AlertSummary:
    """What the callout under the report header says: the alerts up to the report's as-of time."""

    total: int
    validated: int
    unvalidated: DataTable  # the UNVALIDATED alerts, newest first: the site must be contacted today
    as_of: str

    @property
    def text(self) -> str:
        if not self.total:
            return f"Red-flag alerts: none up to {self.as_of}."
        return (f"Red-flag alerts up to {self.as_of}: {self.total} — {self.validated} validated, "
                f"{len(self.unvalidated)} UNVALIDATED.")

    @property
    def xref(self) -> str:
        """The sentence pointing to the Alerts section (in the Red flags section)."""
        if not self.total:
            return f"No red-flag alert was raised up to {self.as_of} (Alerts section, at the end of this report)."
        more = (f", {len(self.unvalidated)} of them UNVALIDATED (raised on a record rejected for another reason: "
                "contact the site today)") if len(self.unvalidated) else ", all validated"
        return (f"Each red-flag alert is listed in the Alerts section at the end of this report: {self.total} up "
                f"to {self.as_of}{more}.")


def alert_summary(data: ReportData) -> AlertSummary:
    alerts = tables.alert_listing(data.table("alerts"))
    unvalidated = alerts[~alerts["validated"].fillna(False).astype(bool)]
    rows = [(r.site_id, r.patient_id, r.flag, r.occurred_at, r.event_id, r.message)
            for r in unvalidated.itertuples(index=False)]
    table = listing(("site", "patient", "flag", "occurred (UTC)", "event", "message"), rows, "alerts-unvalidated")
    return AlertSummary(len(alerts), len(alerts) - len(unvalidated), table, data.reference_label)


def alerts_section(data: ReportData) -> Section:
    alerts = tables.alert_listing(data.table("alerts"))
    rows = [(r.raised_at, r.site_id, r.patient_id, r.flag, r.occurred_at, r.event_id,
             "validated" if r.validated else "UNVALIDATED", r.source, r.message)
            for r in alerts.itertuples(index=False)]
    classes = ["" if r.validated else "unvalidated" for r in alerts.itertuples(index=False)]
    table = listing(("raised", "site", "patient", "flag", "occurred", "event", "record", "source", "message"),
                    rows, "alerts", classes)
    unvalidated = sum(1 for c in classes if c)
    intro = (f"{len(rows)} red-flag alert(s), newest first; {unvalidated} raised on a record that was rejected "
             "for another reason (UNVALIDATED: contact the site today and ask for a corrected resubmission). "
             "Times are UTC.")
    return Section("alerts", OUTCOME_SECTIONS["alerts"], intro=intro, tables=(("Alerts", table),))


def outcome_sections(data: ReportData) -> list[Section]:
    arms = tables.arms_in(data.study, data.table("trajectory"), data.table("recovery_summary"))
    return [
        enrolment_section(data),
        trajectory_section(data, arms),
        improvement_section(data, arms),
        recovery_section(data, arms),
        red_flag_section(data, arms),
        flare_section(data),
        alerts_section(data),
    ]


def render_outcome_report(data: ReportData) -> str:
    """The outcome report as one HTML document (inline CSS and SVG, no scripts, no external references)."""
    return render_template("outcome_report.html.j2", data=data, sections=outcome_sections(data),
                           alerts=alert_summary(data), title=f"{data.study.study_id} — outcome report")
