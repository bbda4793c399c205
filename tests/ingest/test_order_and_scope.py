"""DTS §5 order and scope: what 'already accepted' means across rows, files and runs."""

from __future__ import annotations

import pytest

from pipeline.ingest import crossrow
from tests.ingest.helpers import Deployment, enrollment, event, symptom


def _rules(dep: Deployment) -> dict[str, list[str]]:
    return {r[0]: r[1] for r in dep.q("SELECT event_id, rules FROM quarantine")}


def test_enrollment_later_in_the_same_run_satisfies_earlier_rows(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [symptom("E2")])
    dep.deliver("NL01", "b.csv", [enrollment("E1")])
    dep.ingest()
    assert dep.q("SELECT count(*) FROM events") == [(2,)]


def test_enrollment_in_a_later_run_does_not_rescue_a_rejected_row(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [symptom("E2")])
    dep.ingest()
    dep.deliver("NL01", "b.csv", [enrollment("E1")])
    dep.ingest()
    assert _rules(dep) == {"E2": ["patient_not_enrolled"]}


def test_correction_may_target_an_event_accepted_later_in_the_run(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"),
                                  event("C1", "correction", target_event_id="E2", leg_pain_nrs=4, back_pain_nrs=3,
                                        pain_extent="calf", paresthesia="none")])
    dep.deliver("NL01", "b.csv", [symptom("E2")])
    dep.ingest()
    assert _rules(dep) == {}
    assert dep.q("SELECT count(*) FROM events") == [(3,)]


def test_correction_payload_is_validated_as_its_targets_type(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2"),
                                  event("C1", "correction", target_event_id="E2", leg_pain_nrs=4, arm="surgery")])
    dep.ingest()
    rules = _rules(dep)["C1"]
    assert "field_not_allowed" in rules and "missing_required" in rules  # arm; back_pain_nrs etc.


def test_corrections_and_retractions_cannot_be_retracted(dep: Deployment) -> None:
    corr = event("C1", "correction", target_event_id="E2", leg_pain_nrs=4, back_pain_nrs=3, pain_extent="calf",
                 paresthesia="none")
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2"), corr,
                                  event("R1", "retraction", target_event_id="C1", comment="undo")])
    dep.ingest()
    assert _rules(dep) == {"R1": ["target_unknown"]}


def test_retraction_of_a_withdrawal_is_allowed(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), event("W1", "withdrawal"),
                                  event("R1", "retraction", target_event_id="W1", comment="entered by mistake")])
    dep.ingest()
    assert _rules(dep) == {}


def test_event_id_is_unique_across_sites(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1")])
    dep.deliver("NL02", "a.csv", [enrollment("E1", site="NL02", patient="P5")])
    dep.ingest()
    assert _rules(dep) == {"E1": ["event_id_conflict"]}


def test_corrected_resubmission_of_a_rejected_row_is_accepted(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2", leg_pain_nrs=12)])
    dep.ingest()
    dep.deliver("NL01", "b.csv", [symptom("E2", leg_pain_nrs=8)])
    dep.ingest()
    assert dep.q("SELECT leg_pain_nrs FROM events WHERE event_id = 'E2'") == [(8,)]
    rows = (dep.paths.queries_dir / "NL01" / "query_list.csv").read_text().splitlines()
    assert rows == ["file,record,event_id,rule,message"], "the query is resolved by the resubmission"


def test_duplicate_compares_timestamps_as_instants(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("E2", occurred="2026-01-05T09:00:00Z")])
    dep.ingest()
    dep.deliver("NL01", "b.jsonl", [symptom("E2", occurred="2026-01-05T10:00:00+01:00")])
    (b,) = dep.ingest().batches
    assert (b["accepted"], b["duplicates"], b["rejected"]) == (0, 1, 0)


def test_pain_jump_looks_only_at_earlier_reports_within_24_hours(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [
        enrollment("E1"),
        symptom("S1", occurred="2026-01-05T09:00:00Z", leg_pain_nrs=1),
        symptom("S2", occurred="2026-01-06T10:00:00Z", leg_pain_nrs=8),  # 25 h later: no jump
        symptom("S3", occurred="2026-01-06T12:00:00Z", leg_pain_nrs=1),  # 2 h after S2: jump of 7
    ])
    dep.ingest()
    warned = dict(dep.q("SELECT event_id, warnings FROM events WHERE len(warnings) > 0"))
    assert warned == {"S3": ["pain_jump"]}


@pytest.mark.parametrize("partition_rows", [1_000_000, 2])
def test_pain_jump_sees_reports_across_midnight_and_exactly_24_hours_before(
        dep: Deployment, partition_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Also when patients are checked in many hash partitions (large deliveries)."""
    monkeypatch.setattr(crossrow, "PAIN_JUMP_ROWS", partition_rows)
    dep.deliver("NL01", "a.csv", [
        enrollment("E1"),
        symptom("S1", occurred="2026-01-05T23:00:00Z", leg_pain_nrs=1),
        symptom("S2", occurred="2026-01-06T01:00:00+00:00", leg_pain_nrs=8),  # next UTC day, 2 h later: jump
        symptom("S3", occurred="2026-01-07T01:00:00Z", leg_pain_nrs=1),  # exactly 24 h after S2: jump
    ])
    dep.ingest()
    dep.deliver("NL01", "b.csv", [enrollment("E2", patient="P2"),
                                  symptom("T1", patient="P2", occurred="2026-01-05T09:00:00Z", leg_pain_nrs=9),
                                  symptom("T2", patient="P2", occurred="2026-01-05T10:00:00Z", leg_pain_nrs=2)])
    dep.ingest()
    warned = dict(dep.q("SELECT event_id, warnings FROM events WHERE len(warnings) > 0"))
    assert warned == {"S2": ["pain_jump"], "S3": ["pain_jump"], "T2": ["pain_jump"]}
