"""The GX row checker: what it hands GX and what it leaves behind between chunks."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from pipeline.config import Site, Study
from pipeline.ingest.gx_validate import RowChecker, needed_columns
from pipeline.ingest.prepare import prepare
from pipeline.ingest.stage import parameters
from pipeline.ingest.suites import load_suite_dict

STUDY = Study("T", ("surgery", "conservative"), (Site("NL01"),))


def _chunk(pain: str) -> pa.Table:
    rec = {"event_id": "E1", "event_type": "symptom_report", "site_id": "NL01", "patient_id": "P1",
           "occurred_at": "2025-01-02T10:00:00Z", "recorded_at": "2025-01-02T11:00:00Z", "leg_pain_nrs": pain}
    cols = {k: pa.array([v], pa.string()) for k, v in rec.items()}
    cols["_row"] = pa.array([1], pa.int64())
    cols["_raw"] = pa.array(["{}"], pa.string())
    return pa.table(cols)


def test_a_suite_is_validated_on_only_the_columns_it_reads() -> None:
    envelope = load_suite_dict("envelope")["expectations"]
    cols = needed_columns(envelope, ["_row", "event_id", "leg_pain_nrs", "occurred_at__not_instant", "_entry_lag_days"])
    assert cols == ["_row", "event_id", "occurred_at__not_instant", "_entry_lag_days"]  # leg_pain_nrs: not envelope


def test_gx_keeps_no_frames_or_metrics_after_a_check() -> None:
    """GX's pandas engine caches every batch frame and metric; kept, they grew RSS with the file size."""
    checker = RowChecker()
    params = parameters(STUDY, "NL01", datetime(2026, 1, 1, tzinfo=UTC))
    rules = {}
    for pain in ("3", "11"):
        frame, _ = prepare(_chunk(pain))
        rules[pain] = {f.rule for f in checker.check(frame, params).findings[1]}
        assert checker.cached_items() == 0
    assert "out_of_range" not in rules["3"]
    assert "out_of_range" in rules["11"]  # a fresh engine state still validates


def test_stored_results_keep_every_expectations_counts_and_the_failed_ones_example_rows() -> None:
    """GX validates in two passes (counts, then the failed expectations' rows); the stored result is SUMMARY."""
    checker = RowChecker()
    frame, _ = prepare(_chunk("11"))
    verdict = checker.check(frame, parameters(STUDY, "NL01", datetime(2026, 1, 1, tzinfo=UTC)))
    by_rule = {(r["expectation_config"]["meta"]["rule"], r["expectation_config"]["kwargs"]["column"]): r
               for r in verdict.results["payload_values"]["results"]}
    failed = by_rule[("out_of_range", "leg_pain_nrs__num")]
    assert not failed["success"]
    assert failed["result"]["unexpected_count"] == 1 and failed["result"]["element_count"] == 1
    assert failed["result"]["partial_unexpected_list"] == [11.0]
    assert failed["result"]["partial_unexpected_index_list"] == [{"leg_pain_nrs__num": 11.0, "_row": 1}]
    passed = by_rule[("bad_type", "leg_pain_nrs")]
    assert passed["success"]
    assert passed["result"]["element_count"] == 1 and passed["result"]["unexpected_count"] == 0
    assert passed["result"]["partial_unexpected_list"] == []
    assert passed["result"]["partial_unexpected_index_list"] == []
    assert passed["result"]["partial_unexpected_counts"] == []
    assert verdict.results["payload_values"]["statistics"]["unsuccessful_expectations"] == 1
    rules = {(f.rule, f.field) for f in verdict.findings[1]}
    assert ("out_of_range", "leg_pain_nrs") in rules and ("bad_type", "leg_pain_nrs") not in rules
