"""DTS §5 Safety first: red-flag signals alert in the same run, even when the row is rejected."""

from __future__ import annotations

from tests.ingest.helpers import Deployment, enrollment, event, symptom


def test_red_flag_in_a_rejected_row_still_alerts_unvalidated(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2", leg_pain_nrs=14, bladder_dysfunction=True)])
    summary = dep.ingest()
    assert [(a["event_id"], a["flag"], a["validated"]) for a in summary.alerts] == [("E2", "BLADDER", False)]
    assert dep.q("SELECT event_id, flag, validated, source FROM alerts") == [("E2", "BLADDER", False, "ingest")]


def test_red_flag_event_and_symptoms_alert_validated(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), event("F1", "red_flag", flag="saddle_anesthesia"),
                                  symptom("E2", bowel_dysfunction=True, saddle_numbness=True)])
    dep.ingest()
    got = dep.q("SELECT event_id, flag, validated FROM alerts ORDER BY event_id, flag")
    assert got == [("E2", "BOWEL", True), ("E2", "SADDLE", True), ("F1", "SADDLE", True)]


def test_rerun_and_corrected_resubmission_raise_no_second_alert(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2", leg_pain_nrs=14, bladder_dysfunction=True)])
    dep.ingest()
    dep.ingest()
    dep.deliver("NL01", "b.csv", [symptom("E2", leg_pain_nrs=4, bladder_dysfunction=True)])
    assert dep.ingest().alerts == []
    assert dep.q("SELECT count(*) FROM alerts") == [(1,)]
    assert dep.q("SELECT count(*) FROM events WHERE event_id = 'E2'") == [(1,)]


def test_correction_carrying_a_red_flag_alerts(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2"),
                                  event("C1", "correction", target_event_id="E2", leg_pain_nrs=5, back_pain_nrs=3,
                                        pain_extent="calf", paresthesia="none", bladder_dysfunction=True)])
    dep.ingest()
    assert dep.q("SELECT event_id, flag FROM alerts") == [("C1", "BLADDER")]


def test_file_rejected_whole_raises_no_alert(dep: Deployment) -> None:
    dep.deliver("XX99", "a.csv", [enrollment("E1", site="XX99"), symptom("E2", site="XX99", bladder_dysfunction=True)])
    summary = dep.ingest()
    assert summary.alerts == [] and summary.batches[0]["status"] == "rejected"


def test_stored_validation_results_never_hold_comment_text(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2", comment="ring me on +31 6 1234 5678"),
                                  symptom("E3", comment="x" * 501)])
    dep.ingest()
    stored = "".join(p.read_text() for p in dep.paths.validations_dir.rglob("*.json"))
    assert "phi_in_comment" in stored and "comment_too_long" in stored
    assert "1234 5678" not in stored and "x" * 501 not in stored
