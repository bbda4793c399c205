"""A correction's payload is checked from the delivered text (DTS §4); warnings count only stored rows (DTS §5)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from pipeline.derive.api import derive_in_memory
from pipeline.ingest.summary import print_summary
from tests.ingest.helpers import Deployment, enrollment, event, symptom

SYMPTOM_PAYLOAD = {"leg_pain_nrs": 5, "back_pain_nrs": 3, "pain_extent": "calf", "paresthesia": "none"}


def _quarantined(dep: Deployment) -> dict[str, tuple[list[str], list[str]]]:
    """event_id -> (rules, messages) of the rejected rows."""
    return {r[0]: (r[1], r[2]) for r in dep.q("SELECT event_id, rules, messages FROM quarantine")}


# ---- 1. a correction is checked as an event of its target's type, from the text the site sent ----------------

@pytest.mark.parametrize("extra", [
    {"leg_pain_nrs": "five"},  # not an integer, and not a field of a treatment
    {"bladder_dysfunction": "yes"},  # not a boolean, and not a field of a treatment
    {"age_years": "40.0"},
    {"leg_pain_nrs": "99999999999"},  # an integer, but out of range (and beyond what typing keeps)
])
def test_correction_of_a_treatment_with_an_untyped_foreign_field_gets_what_a_treatment_row_gets(
        dep: Deployment, extra: dict[str, Any]) -> None:
    dep.deliver("NL01", "a.csv", [
        enrollment("E1"), event("T1", "treatment", modality="nsaid"),
        event("T2", "treatment", modality="surgery", **extra),
        event("C1", "correction", target_event_id="T1", modality="surgery", **extra),
    ])
    dep.ingest()
    got = _quarantined(dep)
    assert "field_not_allowed" in got["T2"][0]
    assert got["C1"] == got["T2"], "the correction's findings are those of a plain treatment with the same text"


@pytest.mark.parametrize("extra", [
    {"leg_pain_nrs": "five"},
    {"leg_pain_nrs": "five", "back_pain_nrs": "3.5", "muscle_spasm": "yes"},  # several required and optional
    {"leg_pain_nrs": "99999999999"},  # out_of_range only: the text is there, so nothing is missing
    {"walking_tolerance_min": "a while"},
])
def test_correction_of_a_symptom_report_with_an_untyped_required_value_is_not_missing_required(
        dep: Deployment, extra: dict[str, Any]) -> None:
    dep.deliver("NL01", "a.csv", [
        enrollment("E1"), symptom("S1"),
        symptom("S2", **extra),
        event("C1", "correction", target_event_id="S1", **{**SYMPTOM_PAYLOAD, **extra}),
    ])
    dep.ingest()
    got = _quarantined(dep)
    assert "missing_required" not in got["C1"][0]
    assert got["C1"] == got["S2"], "the correction's findings are those of a plain symptom_report with the same text"


def test_correction_with_a_well_typed_payload_is_still_checked_for_missing_and_foreign_fields(
        dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("S1"),
                                  event("C1", "correction", target_event_id="S1", leg_pain_nrs=4, arm="surgery")])
    dep.ingest()
    rules, messages = _quarantined(dep)["C1"]
    assert rules == ["field_not_allowed", "missing_required"]
    assert "field_not_allowed: arm 'surgery': not a field of a symptom_report event" in messages
    assert "missing_required: back_pain_nrs: required for symptom_report" in messages


def test_correction_in_jsonl_with_a_json_number_for_a_boolean_gets_what_a_plain_row_gets(dep: Deployment) -> None:
    lines = [enrollment("E1"), event("T1", "treatment", modality="nsaid"),
             event("T2", "treatment", modality="surgery", bladder_dysfunction=1),
             event("C1", "correction", target_event_id="T1", modality="surgery", bladder_dysfunction=1)]
    dep.deliver("NL01", "a.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode())
    dep.ingest()
    got = _quarantined(dep)
    assert got["C1"][0] == ["bad_type", "field_not_allowed"]
    assert got["C1"] == got["T2"]


def test_valid_correction_of_a_file_delivered_twice_is_decided_once(dep: Deployment) -> None:
    rows = [enrollment("E1"), symptom("S1"),
            event("C1", "correction", target_event_id="S1", **{**SYMPTOM_PAYLOAD, "leg_pain_nrs": 2})]
    dep.deliver("NL01", "a.csv", rows)
    dep.deliver("NL01", "b.csv", rows)  # the same bytes: a file_duplicate, not read again
    dep.ingest()
    assert _quarantined(dep) == {}
    assert dep.q("SELECT event_id FROM events ORDER BY event_id") == [("C1",), ("E1",), ("S1",)]


# ---- 2. a warning is counted only on a stored (accepted) row --------------------------------------------------

LATE = {"occurred": "2026-01-01T09:00:00Z", "recorded": "2026-01-20T09:00:00Z"}  # 19 days: late_entry


def _ledger(dep: Deployment) -> list[tuple[Any, ...]]:
    return dep.q("SELECT received, accepted, rejected, duplicates, warnings, rule_counts FROM batches")


def _site_week(dep: Deployment) -> tuple[Any, ...]:
    con = derive_in_memory(dep.paths, dep.study)
    try:
        ((row),) = con.execute("SELECT received, accepted, rejected, duplicates, warnings, late_entries, "
                               "warnings_by_rule, rejected_by_rule FROM dq_site_week").fetchall()
        return tuple(row)
    finally:
        con.close()


def test_late_entry_on_a_rejected_row_is_not_counted_as_a_warning(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("S1", pain_extent="ankle", **LATE)])
    summary = dep.ingest()
    ((received, accepted, rejected, duplicates, warnings, rule_counts),) = _ledger(dep)
    assert (received, accepted, rejected, duplicates, warnings) == (2, 1, 1, 0, 0)
    assert received == accepted + rejected + duplicates
    assert dict(rule_counts) == {"bad_enum": 1}
    assert _site_week(dep) == (2, 1, 1, 0, 0, 0, "{}", '{"bad_enum":1}')
    out = io.StringIO()
    print_summary(summary, out)
    assert "warnings 0" in out.getvalue()
    assert summary.by_site()["NL01"]["warnings"] == 0


def test_late_entry_on_an_accepted_row_is_counted_alike_in_ledger_summary_and_dashboard(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("S1", **LATE),
                                  symptom("S2", pain_extent="ankle", **LATE),  # rejected: its warning is not
                                  symptom("S1", **LATE)])  # a duplicate: counted once, as a no-op
    summary = dep.ingest()
    ((received, accepted, rejected, duplicates, warnings, rule_counts),) = _ledger(dep)
    assert (received, accepted, rejected, duplicates, warnings) == (4, 2, 1, 1, 1)
    assert dict(rule_counts) == {"bad_enum": 1, "late_entry": 1}
    assert _site_week(dep) == (4, 2, 1, 1, 1, 1, '{"late_entry":1}', '{"bad_enum":1}')
    out = io.StringIO()
    print_summary(summary, out)
    assert "warnings 1" in out.getvalue()
