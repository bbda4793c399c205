"""adsl.sql and effective.sql: one record per analysed patient, from the effective enrollment (SAP §1)."""

from __future__ import annotations

import pytest

from pipeline.derive.adam.build import AdamError, build_adam
from tests.derive.factories import T0, at, derive, enroll, ev, report

from .conftest import Exported


def adsl(events: list[dict]) -> dict[str, dict]:  # type: ignore[type-arg]
    return {r["SUBJID"]: r for r in build_adam(derive(events), "STUDY-1")["ADSL"].to_pylist()}


def test_a_subject_record_names_study_site_and_patient_and_takes_the_enrollment() -> None:
    got = adsl([enroll("P1", sex="F", side="right", arm="conservative", site_id="S2")])["P1"]
    assert got == {
        "STUDYID": "STUDY-1", "USUBJID": "STUDY-1-S2-P1", "SUBJID": "P1", "SITEID": "S2",
        "ARM": "conservative", "TRT01P": "conservative", "AGE": 40, "AGEU": "YEARS", "SEX": "F",
        "AFFSIDE": "right", "RANDDTM": T0, "WDDTM": None, "EOSSTT": "ONGOING", "ITTFL": "Y", "SAFFL": "Y",
    }


def test_a_correction_of_the_enrollment_replaces_instant_and_payload() -> None:
    got = adsl([
        enroll("P1", sex="F"),
        ev("c1", "correction", at(1), recorded=at(2), target_event_id="enr-P1", arm="conservative",
           age_years=61, sex="M", affected_side="bilateral"),
        ev("c0", "correction", at(3), recorded=at(1), target_event_id="enr-P1", arm="surgery",
           age_years=50, sex="X", affected_side="left"),  # recorded earlier: loses
    ])["P1"]
    assert (got["RANDDTM"], got["ARM"], got["AGE"], got["SEX"], got["AFFSIDE"]) == (
        at(1), "conservative", 61, "M", "bilateral")


def test_a_retracted_enrollment_leaves_no_subject_and_a_retracted_withdrawal_no_date() -> None:
    got = adsl([
        enroll("P1"), ev("x1", "retraction", at(1), target_event_id="enr-P1"),
        enroll("P2"), ev("w2", "withdrawal", at(20), patient_id="P2"),
        ev("x2", "retraction", at(21), patient_id="P2", target_event_id="w2"),
        enroll("P3"), ev("w3", "withdrawal", at(30), patient_id="P3"), ev("w3b", "withdrawal", at(40), patient_id="P3"),
    ])
    assert set(got) == {"P2", "P3"}
    assert (got["P2"]["WDDTM"], got["P2"]["EOSSTT"]) == (None, "ONGOING")
    assert (got["P3"]["WDDTM"], got["P3"]["EOSSTT"]) == (at(30), "DISCONTINUED")


def test_patients_of_adsl_are_those_of_recovery_summary(exported: Exported) -> None:
    ((n,),) = exported.con.sql("select sum(n) from recovery_summary").fetchall()
    table = exported.tables["ADSL"]
    assert table.num_rows == n == exported.tables["ADTTE"].num_rows
    assert table.column("USUBJID").to_pylist() == exported.tables["ADTTE"].column("USUBJID").to_pylist()
    assert set(table.column("SEX").to_pylist()) <= {"F", "M", "X", None}
    assert "DISCONTINUED" in table.column("EOSSTT").to_pylist()  # the simulator withdraws some


def test_two_patients_whose_ids_would_join_alike_stop_the_export_in_one_line() -> None:
    events = [enroll("1-P", site_id="S"), enroll("P", site_id="S-1")]
    with pytest.raises(AdamError, match=r"USUBJID 'T-S-1-P' would name two patients"):
        build_adam(derive(events, study=_study("S", "S-1")), "T")


def _study(*sites: str):  # type: ignore[no-untyped-def]
    from pipeline.config import Site, Study

    return Study(study_id="T", arms=("surgery", "conservative"), sites=tuple(Site(s) for s in sites))


def test_a_report_does_not_make_a_subject_without_enrollment() -> None:
    assert set(adsl([enroll("P1"), report("r1", at(2), patient_id="P9")])) == {"P1"}
