"""sql/patient_week.sql: centralisation, responder, improvement signs and status (SAP §4)."""

from __future__ import annotations

from typing import Any

from .factories import at, derive, enroll, ev, report, rows

COLUMNS = "week, status, centralization, responder, improvement_signs"


def weeks(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rows(derive(events), f"select {COLUMNS} from patient_week order by week")


def test_week_zero_is_the_baseline_and_only_weeks_with_leg_pain_have_rows() -> None:
    got = weeks([
        enroll(), report("r0", at(-1), leg=6, extent="calf"),
        ev("a1", "assessment", at(3), slr_angle_deg=50),  # week 1: no LEGPAIN, no row
        report("r2", at(9), leg=6, extent="calf"),
    ])
    assert got == [
        {"week": 0, "status": "baseline", "centralization": "unchanged", "responder": False, "improvement_signs": 0},
        {"week": 2, "status": "unchanged", "centralization": "unchanged", "responder": False, "improvement_signs": 0},
    ]


def test_centralization_compares_extent_with_its_baseline() -> None:
    got = weeks([
        enroll(), report("r0", at(-1), leg=6, extent="calf"),
        report("r1", at(2), leg=6, extent="knee"),  # week 1: centralized
        report("r2", at(9), leg=6, extent="foot"),  # week 2: peripheralized → worsening
    ])
    assert [(r["week"], r["centralization"], r["status"]) for r in got] == [
        (0, "unchanged", "baseline"), (1, "centralized", "unchanged"), (2, "peripheralized", "worsening"),
    ]


def test_without_an_extent_baseline_centralization_is_null() -> None:
    got = weeks([enroll(), report("r1", at(2), leg=6, extent="knee")])
    assert got == [
        {"week": 1, "status": "unchanged", "centralization": None, "responder": None, "improvement_signs": 0},
    ]


def test_responder_is_a_fall_of_at_least_30_percent() -> None:
    got = weeks([
        enroll(), report("r0", at(-1), leg=10),
        report("r1", at(2), leg=7),  # -30 %: responder → improving
        report("r2", at(9), leg=8),  # -20 %: no responder; the pain sign alone is not improving
    ])
    assert [(r["week"], r["responder"], r["status"], r["improvement_signs"]) for r in got] == [
        (0, False, "baseline", 0), (1, True, "improving", 1), (2, False, "unchanged", 1),
    ]


def test_responder_is_null_when_the_baseline_is_zero() -> None:
    got = weeks([enroll(), report("r0", at(-1), leg=0), report("r1", at(2), leg=0)])
    assert got[1] == {"week": 1, "status": "recovered", "centralization": "unchanged", "responder": None,
                      "improvement_signs": 0}


def test_all_five_improvement_signs() -> None:
    got = weeks([
        enroll(),
        report("r0", at(-1), leg=8, extent="foot", walking_tolerance_min=20),
        ev("a0", "assessment", at(-1), dorsiflexion_mrc=3, slr_angle_deg=30, calf_raise_count=5),
        # centralized, DFMRC up, SLR +10, leg pain -2, walking 1.5 × baseline
        report("r1", at(2), leg=6, extent="calf", walking_tolerance_min=30),
        ev("a1", "assessment", at(3), dorsiflexion_mrc=4, slr_angle_deg=40, calf_raise_count=5),
    ])
    assert got[1] == {"week": 1, "status": "improving", "centralization": "centralized", "responder": False,
                      "improvement_signs": 5}


def test_signs_need_both_values_and_use_the_stated_thresholds() -> None:
    got = weeks([
        enroll(),
        report("r0", at(-1), leg=8, extent="calf", walking_tolerance_min=0),
        ev("a0", "assessment", at(-1), dorsiflexion_mrc=4, calf_raise_count=5, slr_angle_deg=30),
        # week 1: calf raises +5 (strength), walking 10 from a baseline of 0; SLR +9 is not enough;
        # leg pain -1 is not the pain sign
        report("r1", at(2), leg=7, extent="calf", walking_tolerance_min=10),
        ev("a1", "assessment", at(3), dorsiflexion_mrc=4, calf_raise_count=10, slr_angle_deg=39),
        # week 2: walking 9 from a baseline of 0 is no sign; nothing else measured
        report("r2", at(9), leg=7, extent="calf", walking_tolerance_min=9),
    ])
    assert [(r["week"], r["improvement_signs"], r["status"]) for r in got] == [
        (0, 0, "baseline"), (1, 2, "improving"), (2, 0, "unchanged"),
    ]


def test_status_takes_the_first_that_applies() -> None:
    got = weeks([
        enroll(),
        report("r0", at(-1), leg=5, extent="calf"),
        report("r1", at(2), leg=1, extent="calf", global_recovery=2),  # week 1: recovered
        report("r2", at(9), leg=1, extent="calf", global_recovery=3),  # week 2: GPE 3: not recovered; improving
        report("r3", at(16), leg=7, extent="calf"),  # week 3: +2 → worsening
        report("r4", at(23), leg=0, extent="foot"),  # week 4: recovered beats peripheralized
        report("r5", at(30), leg=9, extent="foot", bladder_dysfunction=True),  # week 5: incident red flag
        report("r6", at(37), leg=5, extent="calf"),  # week 6: unchanged
    ])
    assert [(r["week"], r["status"]) for r in got] == [
        (0, "baseline"), (1, "recovered"), (2, "improving"), (3, "worsening"), (4, "recovered"), (5, "red_flag"),
        (6, "unchanged"),
    ]


def test_a_prevalent_red_flag_does_not_mark_a_week() -> None:
    got = weeks([
        enroll(),
        report("r0", at(-1), leg=5, bladder_dysfunction=True),  # prevalent at baseline
        report("r1", at(2), leg=5, bladder_dysfunction=True),  # not incident: not a red_flag week
    ])
    assert [(r["week"], r["status"]) for r in got] == [(0, "baseline"), (1, "unchanged")]


def test_an_exact_30_percent_fall_of_a_weekly_mean_is_a_responder() -> None:
    # week 1: mean (4 + 4 + 4 + 4 + 5) / 5 = 4.2 against a baseline of 6, exactly -30 %
    diaries = [report(f"r{i}", at(1 + i), leg=leg) for i, leg in enumerate([4, 4, 4, 4, 5])]
    got = weeks([enroll(), report("r0", at(0), leg=6), *diaries])
    assert [(r["week"], r["responder"], r["status"]) for r in got] == [(0, False, "baseline"), (1, True, "improving")]
