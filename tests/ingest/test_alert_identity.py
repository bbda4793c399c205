"""DTS §5 Safety first: one alert per (site, patient, event_id, flag) — another patient's signal is never swallowed."""

from __future__ import annotations

from tests.ingest.helpers import Deployment, enrollment, event

RED_FLAG_P1 = event("R1", "red_flag", patient="P1", flag="bladder_dysfunction")
RED_FLAG_P2 = event("R1", "red_flag", patient="P2", flag="bladder_dysfunction")  # reuses P1's event_id


def test_red_flag_of_another_patient_reusing_an_alerted_event_id_alerts_in_a_later_run(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), enrollment("E2", patient="P2"), RED_FLAG_P1])
    dep.ingest()
    dep.deliver("NL01", "b.csv", [RED_FLAG_P2])
    summary = dep.ingest()
    assert [(a["patient_id"], a["event_id"], a["flag"], a["validated"]) for a in summary.alerts] == [
        ("P2", "R1", "BLADDER", False)]
    assert dep.q("SELECT rules FROM quarantine") == [(["event_id_conflict"],)]
    got = dep.q("SELECT patient_id, event_id, flag, validated FROM alerts ORDER BY patient_id")
    assert got == [("P1", "R1", "BLADDER", True), ("P2", "R1", "BLADDER", False)]
    assert dep.q("SELECT count(DISTINCT alert_id) FROM alerts") == [(2,)]


def test_red_flag_of_another_patient_reusing_an_event_id_in_the_same_file_alerts(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), enrollment("E2", patient="P2"), RED_FLAG_P1, RED_FLAG_P2])
    summary = dep.ingest()
    assert [(a["patient_id"], a["validated"]) for a in summary.alerts] == [("P1", True), ("P2", False)]


def test_redelivered_rejected_red_flag_of_the_same_patient_raises_no_second_alert(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), enrollment("E2", patient="P2"), RED_FLAG_P1])
    dep.deliver("NL01", "b.csv", [RED_FLAG_P2])
    dep.deliver("NL01", "c.jsonl", [RED_FLAG_P2])  # the same row again, later in the same run
    dep.ingest()
    dep.deliver("NL01", "d.csv", [RED_FLAG_P2, enrollment("E3", patient="P3")])  # and in a later run
    assert dep.ingest().alerts == []
    assert dep.q("SELECT patient_id, count(*) FROM alerts GROUP BY ALL ORDER BY ALL") == [("P1", 1), ("P2", 1)]
