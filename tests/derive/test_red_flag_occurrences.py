"""sql/red_flag_events.sql + sql/red_flag_occurrences.sql: first occurrence of each flag (SAP §6)."""

from __future__ import annotations

from typing import Any

import pytest

from .factories import at, derive, enroll, ev, report, rows


def occurrences(*events: dict[str, Any], side: str = "left") -> list[tuple[Any, ...]]:
    con = derive([enroll(side=side), *events])
    got = rows(con, "select flag, event_id, study_day, prevalent from red_flag_occurrences order by flag")
    return [(r["flag"], r["event_id"], r["study_day"], r["prevalent"]) for r in got]


def flagged(**kw: Any) -> dict[str, Any]:
    return report("r1", at(3), **kw)


@pytest.mark.parametrize(("event", "flag"), [
    (flagged(bladder_dysfunction=True), "BLADDER"),
    (flagged(bowel_dysfunction=True), "BOWEL"),
    (flagged(saddle_numbness=True), "SADDLE"),
    (flagged(bilateral_symptoms=True), "BILATERAL"),
    (ev("r1", "red_flag", at(3), flag="bladder_dysfunction"), "BLADDER"),
    (ev("r1", "red_flag", at(3), flag="bowel_dysfunction"), "BOWEL"),
    (ev("r1", "red_flag", at(3), flag="saddle_anesthesia"), "SADDLE"),
    (ev("r1", "red_flag", at(3), flag="bilateral_symptoms"), "BILATERAL"),
    (ev("r1", "red_flag", at(3), flag="progressive_motor_deficit"), "MOTOR"),
    (ev("r1", "red_flag", at(3), flag="other"), "OTHER"),
])
def test_each_source_of_a_flag(event: dict[str, Any], flag: str) -> None:
    assert occurrences(event) == [(flag, "r1", 3, False)]


def test_false_symptoms_are_no_flag() -> None:
    assert occurrences(flagged(bladder_dysfunction=False, bowel_dysfunction=False, saddle_numbness=False,
                               bilateral_symptoms=False)) == []


def test_bilateral_symptoms_of_a_bilateral_patient_are_no_flag_but_a_reported_one_is() -> None:
    assert occurrences(flagged(bilateral_symptoms=True), side="bilateral") == []
    assert occurrences(ev("f1", "red_flag", at(4), flag="bilateral_symptoms"), side="bilateral") == [
        ("BILATERAL", "f1", 4, False),
    ]


def test_the_first_occurrence_counts_and_one_report_can_raise_several_flags() -> None:
    got = occurrences(
        report("r1", at(5), bladder_dysfunction=True),
        report("r2", at(3), bladder_dysfunction=True, bowel_dysfunction=True),
        ev("f1", "red_flag", at(2), flag="bladder_dysfunction"),
    )
    assert got == [("BLADDER", "f1", 2, False), ("BOWEL", "r2", 3, False)]


def test_a_flag_first_seen_up_to_day_zero_is_prevalent() -> None:
    got = occurrences(report("r0", at(0, hours=23), saddle_numbness=True), report("r1", at(1), saddle_numbness=True),
                      report("r2", at(1), bladder_dysfunction=True))
    assert got == [("BLADDER", "r2", 1, False), ("SADDLE", "r0", 0, True)]


def test_the_occurrence_row_names_patient_arm_and_instant() -> None:
    con = derive([enroll(arm="conservative"), report("r1", at(3, hours=5), bowel_dysfunction=True)])
    assert rows(con, "select * from red_flag_occurrences") == [{
        "site_id": "S1", "patient_id": "P1", "arm": "conservative", "flag": "BOWEL", "event_id": "r1",
        "occurred_at": at(3, hours=5), "study_day": 3, "prevalent": False,
    }]


class TestMotor:
    def test_dorsiflexion_three_or_less_from_day_one_with_a_baseline_of_four(self) -> None:
        got = occurrences(ev("a0", "assessment", at(-5), dorsiflexion_mrc=3),  # before day 1: no flag
                          ev("a1", "assessment", at(-1), dorsiflexion_mrc=4),  # the baseline: the latest of week 0
                          ev("a2", "assessment", at(9), dorsiflexion_mrc=3))
        assert got == [("MOTOR", "a2", 9, False)]

    def test_no_motor_flag_from_a_low_baseline(self) -> None:
        assert occurrences(ev("a0", "assessment", at(-2), dorsiflexion_mrc=3),
                           ev("a1", "assessment", at(9), dorsiflexion_mrc=2)) == []

    @pytest.mark.parametrize("muscle", ["dorsiflexion_mrc", "plantarflexion_mrc"])
    def test_a_drop_of_two_grades_from_the_previous_assessment(self, muscle: str) -> None:
        before: dict[str, Any] = {muscle: 5}
        after: dict[str, Any] = {muscle: 3}
        got = occurrences(ev("a0", "assessment", at(-10), **before),
                          ev("a1", "assessment", at(-5), odi_score=30),  # no value for the muscle: skipped
                          ev("a2", "assessment", at(-1), **after))
        assert got == [("MOTOR", "a2", -1, True)]

    def test_a_drop_of_one_grade_twice_is_no_flag(self) -> None:
        assert occurrences(ev("a0", "assessment", at(-10), plantarflexion_mrc=5),
                           ev("a1", "assessment", at(5), plantarflexion_mrc=4),
                           ev("a2", "assessment", at(12), plantarflexion_mrc=3)) == []

    def test_the_previous_assessment_is_strictly_earlier(self) -> None:
        # a1 and a2 share their instant: neither is the other's previous assessment; both follow a0
        got = occurrences(ev("a0", "assessment", at(2), plantarflexion_mrc=4),
                          ev("a1", "assessment", at(5), plantarflexion_mrc=5, recorded=at(6)),
                          ev("a2", "assessment", at(5), plantarflexion_mrc=3, recorded=at(7)))
        assert got == []


class TestParesthesiaSpread:
    def test_two_levels_more_distal_within_seven_days_with_two_points_more_pain(self) -> None:
        got = occurrences(report("r1", at(2), leg=4, paresthesia="tingling", paresthesia_extent="thigh"),
                          report("r2", at(9), leg=6, paresthesia="numbness", paresthesia_extent="calf"))
        assert got == [("PARESTHESIA_SPREAD", "r2", 9, False)]

    @pytest.mark.parametrize(("first", "second"), [
        # only one level more distal
        ({"paresthesia": "tingling", "paresthesia_extent": "thigh", "leg": 4},
         {"paresthesia": "tingling", "paresthesia_extent": "knee", "leg": 6}),
        # pain only one point higher
        ({"paresthesia": "tingling", "paresthesia_extent": "thigh", "leg": 4},
         {"paresthesia": "tingling", "paresthesia_extent": "calf", "leg": 5}),
    ])
    def test_below_either_threshold_is_no_spread(self, first: dict[str, Any], second: dict[str, Any]) -> None:
        assert occurrences(report("r1", at(2), **first), report("r2", at(4), **second)) == []

    def test_the_previous_report_must_be_within_the_seven_days_before(self) -> None:
        assert occurrences(report("r1", at(2), leg=4, paresthesia="none"),
                           report("r2", at(9, hours=1), leg=6, paresthesia="tingling",
                                  paresthesia_extent="knee")) == []

    def test_none_means_extent_none_whatever_it_holds_and_missing_counts_as_none(self) -> None:
        got = occurrences(
            report("r1", at(2), leg=2, paresthesia="none", paresthesia_extent="foot"),  # counts as none (0)
            report("r2", at(3), leg=4, paresthesia="tingling", paresthesia_extent="buttock"),  # 0 → 2: spread
            report("r3", at(4), leg=4, paresthesia="tingling"),  # missing extent: 0
            report("r4", at(5), leg=6, paresthesia="numbness", paresthesia_extent="buttock"),  # 0 → 2 again
        )
        assert got == [("PARESTHESIA_SPREAD", "r2", 3, False)]

    def test_only_the_immediately_previous_report_counts(self) -> None:
        assert occurrences(report("r1", at(2), leg=2, paresthesia="none"),
                           report("r2", at(3), leg=4, paresthesia="tingling", paresthesia_extent="thigh"),
                           report("r3", at(4), leg=5, paresthesia="tingling", paresthesia_extent="calf")) == [
            ("PARESTHESIA_SPREAD", "r2", 3, False),
        ]
