"""Outcome report (issue 4): numbers behind each figure from literal derived tables, and the rendered page."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

import pandas as pd
import pytest

from pipeline.report import outcome_tables as t
from pipeline.report.data import ReportData, to_frame
from pipeline.report.outcome import (
    OUTCOME_FIGURES,
    OUTCOME_SECTIONS,
    recovery_section,
    red_flag_section,
    render_outcome_report,
)
from tests.report.helpers import (
    FINGERPRINT,
    NOW,
    SCRIPT,
    STUDY,
    assert_self_contained,
    sample_tables,
    table_rows,
)


def _data(tables: dict[str, pd.DataFrame], as_of: datetime | None = None) -> ReportData:
    return ReportData.build(STUDY, tables, FINGERPRINT, as_of=as_of, generated_at=NOW)


@pytest.fixture(scope="module")
def page() -> str:
    return render_outcome_report(_data(sample_tables()))


def test_legpain_means_are_arm_week_means_with_t_interval() -> None:
    traj = pd.DataFrame([
        {"arm": "surgery", "patient_id": "A", "param": "LEGPAIN", "week": 1, "value": 2.0},
        {"arm": "surgery", "patient_id": "B", "param": "LEGPAIN", "week": 1, "value": 4.0},
        {"arm": "surgery", "patient_id": "C", "param": "LEGPAIN", "week": 1, "value": 6.0},
        {"arm": "surgery", "patient_id": "C", "param": "BACKPAIN", "week": 1, "value": 9.0},
        {"arm": "conservative", "patient_id": "D", "param": "LEGPAIN", "week": 1, "value": 7.0},
    ])
    got = t.legpain_means(traj).set_index("arm")
    half = 4.302652729749464 * 2.0 / math.sqrt(3)  # t(0.975, 2) · sd / √n
    assert got.loc["surgery", "n"] == 3
    assert got.loc["surgery", "mean"] == pytest.approx(4.0)
    assert got.loc["surgery", "ci_low"] == pytest.approx(4.0 - half)
    assert got.loc["surgery", "ci_high"] == pytest.approx(4.0 + half)
    assert got.loc["conservative", "mean"] == 7.0 and pd.isna(got.loc["conservative", "ci_low"])


def test_enrolment_counts_patients_by_site_and_arm_and_patients_not_yet_observed() -> None:
    traj = pd.DataFrame([
        {"site_id": "NL01", "patient_id": "A", "arm": "surgery"},
        {"site_id": "NL01", "patient_id": "A", "arm": "surgery"},
        {"site_id": "NL02", "patient_id": "B", "arm": "conservative"},
    ])
    occurrences = pd.DataFrame([{"site_id": "NL02", "patient_id": "C", "arm": "surgery"}])
    summary = pd.DataFrame([{"arm": "surgery", "n": 3}, {"arm": "conservative", "n": 1}])
    got = t.enrolment(STUDY, traj, pd.DataFrame(columns=["site_id", "patient_id", "arm"]), occurrences, summary)
    assert got.to_dict("records") == [
        {"site": "NL01", "surgery": 1, "conservative": 0, "total": 1},
        {"site": "NL02", "surgery": 1, "conservative": 1, "total": 2},
        {"site": "NL03", "surgery": 0, "conservative": 0, "total": 0},
        {"site": "not yet observed", "surgery": 1, "conservative": 0, "total": 1},
        {"site": "total", "surgery": 3, "conservative": 1, "total": 4},
    ]


def test_centralisation_shares_count_weeks_after_baseline_with_a_status() -> None:
    pw = pd.DataFrame([
        {"arm": "surgery", "week": 0, "centralization": None},
        {"arm": "surgery", "week": 1, "centralization": "centralized"},
        {"arm": "surgery", "week": 1, "centralization": "centralized"},
        {"arm": "surgery", "week": 1, "centralization": "peripheralized"},
        {"arm": "surgery", "week": 1, "centralization": None},
    ])
    got = t.centralisation_shares(pw).to_dict("records")
    assert got == [{"arm": "surgery", "week": 1, "n": 3, "centralized": pytest.approx(2 / 3), "unchanged": 0.0,
                    "peripheralized": pytest.approx(1 / 3)}]


def test_improvement_shares_group_three_or_more_signs() -> None:
    pw = pd.DataFrame([{"arm": "surgery", "week": 2, "improvement_signs": s} for s in (0, 2, 3, 5)])
    got = t.improvement_shares(pw).iloc[0]
    assert (got["n"], got["0"], got["1"], got["2"], got["3+"], got["two_or_more"]) == (4, 0.25, 0.0, 0.25, 0.5, 0.75)


def test_flare_summary_shares_exclude_treatments_without_baseline() -> None:
    flares = pd.DataFrame([
        {"modality": "dry_needling", "classification": "expected_flare", "pre_pain": 4, "peak_pain": 7,
         "duration_days": 3.0},
        {"modality": "dry_needling", "classification": "prolonged_flare", "pre_pain": 5, "peak_pain": 7,
         "duration_days": None},
        {"modality": "dry_needling", "classification": "no_flare", "pre_pain": 5, "peak_pain": None,
         "duration_days": None},
        {"modality": "dry_needling", "classification": "no_baseline", "pre_pain": None, "peak_pain": None,
         "duration_days": None},
    ])
    got = t.flare_summary(flares).iloc[0]
    assert (got["treatments"], got["expected_flare"], got["prolonged_flare"], got["no_baseline"]) == (4, 1, 1, 1)
    assert got["flare_share"] == pytest.approx(2 / 3)
    assert (got["median_duration_days"], got["median_rise"]) == (3.0, 2.5)


def test_forest_rows_list_overall_then_sites_then_arms_in_study_order() -> None:
    rows = [{"stratum_type": k, "stratum": s, "flag": "ANY", "rate_per_100pw": 1.0}
            for k, s in (("arm", "conservative"), ("site", "NL02"), ("arm", "surgery"), ("overall", "overall"),
                         ("site", "NL01"))]
    got = t.forest_rows(STUDY, to_frame("red_flag_incidence", pd.DataFrame(rows)))
    assert list(got["stratum"]) == ["overall", "NL01", "NL02", "surgery", "conservative"]


def test_report_has_every_section_and_figure_with_caption_and_provenance(page: str) -> None:
    for key, title in OUTCOME_SECTIONS.items():
        assert re.search(rf'<section id="{key}">\s*<h2>{re.escape(title)}</h2>', page), key
    for key in OUTCOME_FIGURES:
        block = page.split(f'<figure id="fig-{key}"', 1)[1].split("</figure>", 1)[0]
        assert "<svg " in block, key
        caption = block.split("<figcaption>", 1)[1]
        assert FINGERPRINT in caption and "as of 2025-02-13T09:00:00Z (UTC; every ingested event)" in caption, key


def test_report_is_self_contained_without_scripts_or_external_references(page: str) -> None:
    assert_self_contained(page)


def test_site_text_in_alerts_is_shown_as_text(page: str) -> None:
    assert SCRIPT not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    messages = [r["message"] for r in table_rows(page, "alerts")]
    assert f"rejected record; comment: {SCRIPT}" in messages


def _svg(page: str, key: str) -> str:
    return page.split(f'<figure id="fig-{key}"', 1)[1].split("</svg>", 1)[0]


def test_trajectory_figure_follows_the_derived_table(page: str) -> None:
    tables = sample_tables()
    legpain = (tables["trajectory"]["param"] == "LEGPAIN") & (tables["trajectory"]["week"] == 4) & (
        tables["trajectory"]["arm"] == "surgery")
    tables["trajectory"].loc[legpain, "value"] += 2.0
    after = render_outcome_report(_data(tables))

    def mean(html: str) -> float:
        row = next(r for r in table_rows(html, "trajectory") if r["arm"] == "surgery" and r["week"] == "4")
        return float(row["mean"])

    assert mean(after) == pytest.approx(mean(page) + 2.0, abs=0.011)
    assert _svg(page, "trajectory") != _svg(after, "trajectory")
    assert _svg(page, "km") == _svg(after, "km")  # figures of other tables unchanged


def test_recovery_and_forest_figures_follow_the_derived_tables(page: str) -> None:
    tables = sample_tables()
    tables["recovery_km"]["survival"] = tables["recovery_km"]["survival"] * 0.5
    overall = (tables["red_flag_incidence"]["stratum_type"] == "overall") & (
        tables["red_flag_incidence"]["flag"] == "ANY")
    tables["red_flag_incidence"].loc[overall, "rate_per_100pw"] = 4.25
    data = _data(tables)
    km = recovery_section(data, list(STUDY.arms)).figures[0]
    forest = red_flag_section(data, list(STUDY.arms)).figures[0]
    survival = km.numbers.columns.index("survival")
    first = [float(r["survival"]) for r in table_rows(page, "km")]
    assert [float(r[survival]) for r in km.numbers.rows] == pytest.approx([s / 2 for s in first], abs=1e-3)
    assert forest.numbers.rows[0][forest.numbers.columns.index("rate_per_100pw")] == "4.250"
    assert str(km.svg) not in page and str(forest.svg) not in page


def test_report_without_derived_data_says_so() -> None:
    page = render_outcome_report(_data({}, as_of=datetime(2025, 2, 1, tzinfo=UTC)))
    assert page.count("No data yet.") == len(OUTCOME_FIGURES)
    assert "as of 2025-02-01T00:00:00Z (UTC; ingestion cutoff)" in page


def _callout(page: str) -> str:
    return page.split('id="alert-summary">', 1)[1].split("</header>", 1)[0]


def test_alert_summary_under_the_header_lists_unvalidated_alerts(page: str) -> None:
    header = page.split("<header", 1)[1].split("</header>", 1)[0]
    assert 'id="alert-summary"' in header and page.index('id="alert-summary"') < page.index("<section ")
    callout = _callout(page)
    assert "Red-flag alerts up to 2025-02-13T09:00:00Z: 2 — 1 validated, 1 UNVALIDATED." in callout
    assert "contact the site today" in callout and '<a href="#alerts">' in callout
    assert table_rows(page, "alerts-unvalidated") == [
        {"site": "NL02", "patient": "P001", "flag": "SADDLE", "occurred (UTC)": "2025-02-05 09:00", "event": "E-x",
         "message": f"rejected record; comment: {SCRIPT}"}]
    assert SCRIPT not in callout and "&lt;script&gt;" in callout  # site text escaped


def test_alert_summary_says_so_in_one_line_when_there_are_no_alerts() -> None:
    tables = sample_tables()
    tables["alerts"] = tables["alerts"].iloc[0:0]
    page = render_outcome_report(_data(tables))
    callout = page.split('<div class="callout ok" id="alert-summary">', 1)[1].split("</div>", 1)[0]
    assert re.sub(r"<[^>]+>", "", callout).strip() == "Red-flag alerts: none up to 2025-02-13T09:00:00Z."
    assert 'data-table="alerts-unvalidated"' not in page


def test_alert_summary_without_unvalidated_alerts_lists_none() -> None:
    tables = sample_tables()
    tables["alerts"] = tables["alerts"][tables["alerts"]["validated"]]
    page = render_outcome_report(_data(tables))
    assert "Red-flag alerts up to 2025-02-13T09:00:00Z: 1 — 1 validated, 0 UNVALIDATED." in _callout(page)
    assert 'data-table="alerts-unvalidated"' not in page and 'class="callout info"' in page


def test_red_flags_section_points_to_the_alerts(page: str) -> None:
    section = page.split('<section id="red-flags">', 1)[1].split("</section>", 1)[0]
    assert '<a href="#alerts">' in section
    assert ("Each red-flag alert is listed in the Alerts section at the end of this report: 2 up to "
            "2025-02-13T09:00:00Z, 1 of them UNVALIDATED") in section
    assert [r["event"] for r in table_rows(page, "alerts")] == ["E-x", "E-rf1"]


@pytest.mark.parametrize(("as_of", "shown"), [
    (datetime(2026, 11, 21, 17, 56, 44, tzinfo=UTC), "2026-11-21T17:56:44Z"),
    (datetime.fromisoformat("2026-11-21T18:56:44+01:00"), "2026-11-21T17:56:44Z"),
    (datetime(2026, 11, 21, 17, 56, 44, 500000, tzinfo=UTC), "2026-11-21T17:56:44.5Z"),
])
def test_as_of_is_shown_as_the_full_instant_in_utc(as_of: datetime, shown: str) -> None:
    page = render_outcome_report(_data(sample_tables(), as_of=as_of))
    label = f"as of {shown} (UTC; ingestion cutoff)"
    assert label in page.split("</header>", 1)[0]
    captions = re.findall(r'<span class="provenance">(.*?)</span>', page)
    assert len(captions) == len(OUTCOME_FIGURES) and all(label in c for c in captions)
    assert "generated 2025-02-13T09:00:00Z" in page
