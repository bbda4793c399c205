"""sql/log_anchors.sql, effective_events.sql, patients.sql: corrections and retractions (SAP §1)."""

from __future__ import annotations

from datetime import timedelta

from .factories import INGESTED, at, derive, enroll, ev, report, rows


def correction(event_id: str, target: str, when, recorded, **payload):  # type: ignore[no-untyped-def]
    return ev(event_id, "correction", when, recorded=recorded, target_event_id=target, **payload)


def retraction(event_id: str, target: str, when, **kw):  # type: ignore[no-untyped-def]
    return ev(event_id, "retraction", when, target_event_id=target, **kw)


def diary(con):  # type: ignore[no-untyped-def]
    return rows(con, "select event_id, study_day, leg_pain from observations order by event_id")


def test_the_latest_recorded_of_two_corrections_wins() -> None:
    con = derive([
        enroll(),
        report("r1", at(3), leg=5),
        correction("c1", "r1", at(3), recorded=at(4), leg_pain_nrs=7, back_pain_nrs=3, pain_extent="calf",
                   paresthesia="none"),
        # the later correction also moves the observation to day 9
        correction("c2", "r1", at(9), recorded=at(5), leg_pain_nrs=2, back_pain_nrs=3, pain_extent="calf",
                   paresthesia="none"),
    ])
    assert diary(con) == [{"event_id": "r1", "study_day": 9, "leg_pain": 2}]
    assert rows(con, "select week, value from trajectory where param = 'LEGPAIN' order by week") == [
        {"week": 2, "value": 2.0},
    ]


def test_corrections_recorded_at_the_same_instant_go_by_ingestion_then_event_id() -> None:
    payload = {"back_pain_nrs": 3, "pain_extent": "calf", "paresthesia": "none"}
    later_ingested = derive([
        enroll(), report("r1", at(3), leg=5),
        correction("c2", "r1", at(3), recorded=at(4), leg_pain_nrs=7, **payload),
        correction("c1", "r1", at(3), recorded=at(4), leg_pain_nrs=1, ingested=INGESTED + timedelta(hours=1),
                   **payload),
    ])
    assert diary(later_ingested) == [{"event_id": "r1", "study_day": 3, "leg_pain": 1}]
    greater_id = derive([
        enroll(), report("r1", at(3), leg=5),
        correction("c2", "r1", at(3), recorded=at(4), leg_pain_nrs=7, **payload),
        correction("c1", "r1", at(3), recorded=at(4), leg_pain_nrs=1, **payload),
    ])
    assert diary(greater_id) == [{"event_id": "r1", "study_day": 3, "leg_pain": 7}]


def test_a_correction_replaces_the_whole_payload() -> None:
    # the corrected report has no walking tolerance any more: the old value must not survive
    con = derive([
        enroll(),
        report("r1", at(3), leg=5, walking_tolerance_min=30),
        correction("c1", "r1", at(3), recorded=at(4), leg_pain_nrs=5, back_pain_nrs=3, pain_extent="calf",
                   paresthesia="none"),
    ])
    assert rows(con, "select param from trajectory order by param") == [
        {"param": "BACKPAIN"}, {"param": "EXTENT"}, {"param": "LEGPAIN"}, {"param": "PARESTH"},
    ]


def test_a_retraction_removes_its_target_and_the_targets_corrections() -> None:
    con = derive([
        enroll(),
        report("r1", at(3), leg=5),
        report("r2", at(4), leg=6),
        correction("c1", "r1", at(3), recorded=at(4), leg_pain_nrs=7, back_pain_nrs=3, pain_extent="calf",
                   paresthesia="none"),
        retraction("x1", "r1", at(5)),
    ])
    assert diary(con) == [{"event_id": "r2", "study_day": 4, "leg_pain": 6}]


def test_a_retracted_enrollment_takes_the_patient_out_of_every_table() -> None:
    con = derive([
        enroll("P1"), report("r1", at(-1), leg=8, patient_id="P1"), report("r2", at(3), leg=2, patient_id="P1",
                                                                          global_recovery=1),
        ev("t1", "treatment", at(2), "P1", modality="nsaid"),
        retraction("x1", "enr-P1", at(5)),
    ])
    for table in ("trajectory", "patient_week", "treatment_flares", "red_flag_occurrences", "recovery_km"):
        assert rows(con, f"select count(*) as n from {table}") == [{"n": 0}], table
    assert rows(con, "select distinct at_risk from red_flag_incidence") == [{"at_risk": 0}]
    assert rows(con, "select arm, n from recovery_summary order by arm") == [
        {"arm": "conservative", "n": 0}, {"arm": "surgery", "n": 0},
    ]


def test_a_corrected_enrollment_moves_the_time_line_and_the_arm() -> None:
    con = derive([
        enroll(arm="surgery"),
        report("r1", at(3), leg=5),
        correction("c1", "enr-P1", at(2), recorded=at(2), arm="conservative", age_years=40, affected_side="left"),
    ])
    assert rows(con, "select arm, enrolled_at from patients") == [{"arm": "conservative", "enrolled_at": at(2)}]
    assert diary(con) == [{"event_id": "r1", "study_day": 1, "leg_pain": 5}]


def test_a_retracted_withdrawal_no_longer_ends_the_time_at_risk() -> None:
    con = derive([
        enroll(), report("r1", at(14), leg=5),
        ev("w1", "withdrawal", at(7)),
        retraction("x1", "w1", at(8)),
    ])
    assert rows(con, "select withdrawn_at from patients") == [{"withdrawn_at": None}]
    assert rows(con, "select patient_weeks from red_flag_incidence where stratum_type = 'overall' and flag = 'ANY'") \
        == [{"patient_weeks": 2.0}]


def test_events_of_patients_without_enrollment_take_part_in_nothing() -> None:
    con = derive([enroll("P1"), report("r1", at(3), patient_id="P1"), report("r2", at(3), patient_id="P2")])
    assert rows(con, "select site_id, patient_id from patients") == [{"site_id": "S1", "patient_id": "P1"}]
    assert [r["event_id"] for r in diary(con)] == ["r1"]


def test_patients_are_identified_by_site_and_patient_id() -> None:
    con = derive([enroll("P1", site_id="S1"), enroll("P1", site_id="S2", arm="conservative", event_id="e2"),
                  report("r1", at(3), patient_id="P1")])
    assert rows(con, "select site_id, patient_id, arm from patients order by site_id") == [
        {"site_id": "S1", "patient_id": "P1", "arm": "surgery"},
        {"site_id": "S2", "patient_id": "P1", "arm": "conservative"},
    ]
