"""sql/weekly_values.sql + sql/trajectory.sql: parameters per patient × week (SAP §3)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from .factories import at, derive, enroll, ev, report, rows

COLUMNS = "param, week, value, baseline, change, pct_change"


@pytest.fixture(scope="module")
def course():  # type: ignore[no-untyped-def]
    """One patient: a baseline window, a full week 1, no week 2, a week 3."""
    return derive([
        enroll(),
        # week 0 (days -14 … 0): the latest value is the baseline
        report("r1", at(-3), leg=6, back=4, extent="foot", paresthesia="numbness", paresthesia_extent="foot",
               walking_tolerance_min=30),
        report("r2", at(0, hours=2), leg=8, back=5, extent="calf", paresthesia="tingling", paresthesia_extent="knee",
               walking_tolerance_min=20),
        ev("a1", "assessment", at(-1), dorsiflexion_mrc=4, slr_angle_deg=40, calf_raise_count=10, odi_score=50),
        # week 1 (days 1 … 7)
        report("r3", at(2), leg=6, back=4, extent="knee", paresthesia="none", walking_tolerance_min=40,
               global_recovery=4),
        report("r4", at(5), leg=4, back=2, extent="thigh", paresthesia="tingling", paresthesia_extent="calf",
               global_recovery=3),
        ev("a2", "assessment", at(6), dorsiflexion_mrc=5, slr_angle_deg=60, calf_raise_count=12),
        # week 3 (days 15 … 21)
        report("r5", at(15), leg=0, back=1, extent="none", paresthesia="none"),
    ])


def test_week_zero_holds_the_baseline_the_latest_value_of_the_window(course) -> None:  # type: ignore[no-untyped-def]
    got = rows(course, f"select {COLUMNS} from trajectory where week = 0 order by param")
    assert got == [
        {"param": p, "week": 0, "value": v, "baseline": v, "change": 0.0, "pct_change": 0.0}
        for p, v in [("BACKPAIN", 5.0), ("CALF", 10.0), ("DFMRC", 4.0), ("EXTENT", 5.0), ("LEGPAIN", 8.0),
                     ("ODI", 50.0), ("PARESTH", 1.0), ("SLR", 40.0), ("WALK", 20.0)]
    ]


def test_weekly_values_are_mean_max_or_last_with_change_from_baseline(course) -> None:  # type: ignore[no-untyped-def]
    got = rows(course, f"select {COLUMNS} from trajectory where week = 1 order by param")
    assert got == [
        {"param": "BACKPAIN", "week": 1, "value": 3.0, "baseline": 5.0, "change": -2.0, "pct_change": -40.0},
        {"param": "CALF", "week": 1, "value": 12.0, "baseline": 10.0, "change": 2.0, "pct_change": 20.0},
        {"param": "DFMRC", "week": 1, "value": 5.0, "baseline": 4.0, "change": 1.0, "pct_change": 25.0},
        {"param": "EXTENT", "week": 1, "value": 4.0, "baseline": 5.0, "change": -1.0, "pct_change": -20.0},
        # GPE has no baseline: change and pct_change are null
        {"param": "GPE", "week": 1, "value": 3.0, "baseline": None, "change": None, "pct_change": None},
        {"param": "LEGPAIN", "week": 1, "value": 5.0, "baseline": 8.0, "change": -3.0, "pct_change": -37.5},
        {"param": "PARESTH", "week": 1, "value": 1.0, "baseline": 1.0, "change": 0.0, "pct_change": 0.0},
        {"param": "SLR", "week": 1, "value": 60.0, "baseline": 40.0, "change": 20.0, "pct_change": 50.0},
        # a null walking tolerance does not count in the mean
        {"param": "WALK", "week": 1, "value": 40.0, "baseline": 20.0, "change": 20.0, "pct_change": 100.0},
    ]


def test_a_week_without_values_has_no_rows(course) -> None:  # type: ignore[no-untyped-def]
    assert rows(course, "select distinct week from trajectory order by week") == [
        {"week": 0}, {"week": 1}, {"week": 3},
    ]
    assert rows(course, f"select {COLUMNS} from trajectory where week = 3 and param = 'LEGPAIN'") == [
        {"param": "LEGPAIN", "week": 3, "value": 0.0, "baseline": 8.0, "change": -8.0, "pct_change": -100.0},
    ]


def test_rows_carry_site_patient_and_arm(course) -> None:  # type: ignore[no-untyped-def]
    assert rows(course, "select distinct site_id, patient_id, arm from trajectory") == [
        {"site_id": "S1", "patient_id": "P1", "arm": "surgery"},
    ]


def test_baseline_zero_gives_no_percent_change() -> None:
    con = derive([enroll(), report("r1", at(-1), leg=0), report("r2", at(3), leg=3)])
    assert rows(con, f"select {COLUMNS} from trajectory where param = 'LEGPAIN' order by week") == [
        {"param": "LEGPAIN", "week": 0, "value": 0.0, "baseline": 0.0, "change": 0.0, "pct_change": None},
        {"param": "LEGPAIN", "week": 1, "value": 3.0, "baseline": 0.0, "change": 3.0, "pct_change": None},
    ]


def test_without_a_baseline_window_value_change_is_null() -> None:
    con = derive([enroll(), report("r1", at(3), leg=3)])
    assert rows(con, f"select {COLUMNS} from trajectory where param = 'LEGPAIN'") == [
        {"param": "LEGPAIN", "week": 1, "value": 3.0, "baseline": None, "change": None, "pct_change": None},
    ]


def test_ties_in_last_go_to_the_latest_recorded_then_the_greatest_event_id() -> None:
    same = at(-1)
    con = derive([
        enroll(),
        # baseline: same occurred_at, the later recorded_at wins
        report("b2", same, leg=7, recorded=same + timedelta(hours=1)),
        report("b1", same, leg=4, recorded=same + timedelta(hours=2)),
        # week 1 GPE (last): same occurred_at and recorded_at, the greater event_id wins
        report("g1", at(3), leg=5, global_recovery=2, recorded=at(4)),
        report("g2", at(3), leg=5, global_recovery=5, recorded=at(4)),
        # the latest occurred_at beats a later recorded_at
        report("g0", at(2), leg=5, global_recovery=1, recorded=at(6)),
    ])
    assert rows(con, "select param, week, value from trajectory where param in ('LEGPAIN', 'GPE') order by all") == [
        {"param": "GPE", "week": 1, "value": 5.0},
        {"param": "LEGPAIN", "week": 0, "value": 4.0},
        {"param": "LEGPAIN", "week": 1, "value": 5.0},
    ]


def test_observations_before_day_minus_14_are_ignored() -> None:
    con = derive([enroll(), report("r0", at(-15), leg=9), report("r1", at(-14), leg=6)])
    assert rows(con, "select week, value from trajectory where param = 'LEGPAIN'") == [{"week": 0, "value": 6.0}]


def test_a_later_observation_without_the_value_does_not_make_the_last_value_null() -> None:
    con = derive([
        enroll(),
        # week 0: the latest report has no walking tolerance and no GPE; the earlier one's count
        report("b1", at(-2), leg=6, walking_tolerance_min=30, global_recovery=6),
        report("b2", at(-1), leg=7),
        # week 1: GPE is "last" among the reports that have one
        report("w1", at(2), leg=5, global_recovery=3),
        report("w2", at(4), leg=4),
    ])
    got = rows(con, "select param, week, value from trajectory where param in ('WALK', 'GPE') order by all")
    assert got == [
        {"param": "GPE", "week": 0, "value": 6.0},
        {"param": "GPE", "week": 1, "value": 3.0},
        {"param": "WALK", "week": 0, "value": 30.0},
    ]
