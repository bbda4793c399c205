"""sql/dq_event_stats.sql, dq_rule_counts.sql, dq_site_week.sql, dq_batch.sql: data quality (SAP §8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from .factories import batch, derive, enroll, ev, report, rows

T = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)  # a Monday: ISO week 2024-W10
B1, B2 = datetime(2024, 3, 6, 12, 0, tzinfo=UTC), datetime(2024, 3, 7, 8, 0, tzinfo=UTC)  # W10
B3 = datetime(2024, 3, 20, 12, 0, tzinfo=UTC)  # W12
H = timedelta(hours=1)
D = timedelta(days=1)


@pytest.fixture(scope="module")
def dq():  # type: ignore[no-untyped-def]
    events = [
        enroll(when=T, recorded=T + H, ingested=B1, batch_id="b1"),  # lag 1 h
        report("r1", T + D, recorded=T + D + 3 * H, ingested=B1, batch_id="b1"),  # day 1, lag 3 h
        # a baseline diary entered 12 days late
        report("r0", T - 10 * D, recorded=T + 2 * D, ingested=B2, batch_id="b2", warnings=["late_entry", "pain_jump"]),
        report("r3", T + 15 * D, recorded=T + 15 * D + H, ingested=B3, batch_id="b3"),  # day 15 (week 3)
        # a correction is an edit, not a late entry: no lag
        ev("c1", "correction", T + D, recorded=T + 15 * D, ingested=B3, batch_id="b3", target_event_id="r1",
           leg_pain_nrs=4, back_pain_nrs=3, pain_extent="calf", paresthesia="none"),
    ]
    batches = [
        batch("b1", ingested=B1, received=2, accepted=2),
        batch("b2", ingested=B2, received=3, accepted=1, rejected=2, warnings=2),
        batch("b3", ingested=B3, received=3, accepted=2, duplicates=1),
        batch("b4", ingested=B3, unknown_columns=["foo"], warnings=1),
        batch("b9", site_id="S2", ingested=B1, received=1, rejected=1, status="rejected", file_rules=["not_utf8"]),
    ]
    quarantine = [
        {"batch_id": "b2", "site_id": "S1", "source_row": 4, "rules": ["bad_enum", "missing_required"],
         "ingested_at": B2},
        {"batch_id": "b2", "site_id": "S1", "source_row": 5, "rules": ["bad_enum"], "ingested_at": B2},
        {"batch_id": "b9", "site_id": "S2", "source_row": None, "rules": ["not_utf8"], "ingested_at": B1},
    ]
    return derive(events, batches=batches, quarantine=quarantine)


def test_site_week_counts_rules_lags_and_diary_completeness(dq) -> None:  # type: ignore[no-untyped-def]
    got = rows(dq, "select * from dq_site_week order by site_id, iso_week")
    assert got == [
        {"site_id": "S1", "iso_week": "2024-W10", "received": 5, "accepted": 3, "rejected": 2, "warnings": 2,
         "duplicates": 0, "late_entries": 1, "lag_p50_hours": 3.0, "lag_p90_hours": pytest.approx(231.0),
         # as of the end of W10 the latest diary is of day 1: week 1 is owed and kept
         "diary_completeness": 1.0, "files": 2,
         "rejected_by_rule": '{"bad_enum":2,"missing_required":1}',
         "warnings_by_rule": '{"late_entry":1,"pain_jump":1}', "days_since_last_file": 0.0},
        {"site_id": "S1", "iso_week": "2024-W12", "received": 3, "accepted": 2, "rejected": 0, "warnings": 1,
         "duplicates": 1, "late_entries": 0, "lag_p50_hours": 1.0, "lag_p90_hours": 1.0,
         # weeks 1–3 owed (latest diary: day 15); week 2 has no diary
         "diary_completeness": pytest.approx(2 / 3), "files": 2,
         "rejected_by_rule": "{}", "warnings_by_rule": '{"unknown_column":1}', "days_since_last_file": 0.0},
        # a file rejected whole: no events, no diaries owed; silent for 14 days before the latest ingestion
        {"site_id": "S2", "iso_week": "2024-W10", "received": 1, "accepted": 0, "rejected": 1, "warnings": 0,
         "duplicates": 0, "late_entries": 0, "lag_p50_hours": None, "lag_p90_hours": None,
         "diary_completeness": None, "files": 1, "rejected_by_rule": '{"not_utf8":1}', "warnings_by_rule": "{}",
         "days_since_last_file": 14.0},
    ]


def test_one_row_per_batch(dq) -> None:  # type: ignore[no-untyped-def]
    got = rows(dq, "select batch_id, site_id, iso_week, late_entries, lag_p50_hours, lag_p90_hours, "
                   "rejected_by_rule, warnings_by_rule from dq_batch order by batch_id")
    assert got == [
        {"batch_id": "b1", "site_id": "S1", "iso_week": "2024-W10", "late_entries": 0, "lag_p50_hours": 2.0,
         "lag_p90_hours": pytest.approx(2.8), "rejected_by_rule": "{}", "warnings_by_rule": "{}"},
        {"batch_id": "b2", "site_id": "S1", "iso_week": "2024-W10", "late_entries": 1, "lag_p50_hours": 288.0,
         "lag_p90_hours": 288.0, "rejected_by_rule": '{"bad_enum":2,"missing_required":1}',
         "warnings_by_rule": '{"late_entry":1,"pain_jump":1}'},
        {"batch_id": "b3", "site_id": "S1", "iso_week": "2024-W12", "late_entries": 0, "lag_p50_hours": 1.0,
         "lag_p90_hours": 1.0, "rejected_by_rule": "{}", "warnings_by_rule": "{}"},
        {"batch_id": "b4", "site_id": "S1", "iso_week": "2024-W12", "late_entries": 0, "lag_p50_hours": None,
         "lag_p90_hours": None, "rejected_by_rule": "{}", "warnings_by_rule": '{"unknown_column":1}'},
        {"batch_id": "b9", "site_id": "S2", "iso_week": "2024-W10", "late_entries": 0, "lag_p50_hours": None,
         "lag_p90_hours": None, "rejected_by_rule": '{"not_utf8":1}', "warnings_by_rule": "{}"},
    ]


def test_a_withdrawn_patient_owes_diaries_up_to_the_week_before_the_withdrawal() -> None:
    con = derive([
        enroll("P1", when=T, ingested=B3, batch_id="b3"),
        report("r1", T + D, ingested=B3, batch_id="b3"),  # week 1
        report("r2", T + 15 * D, ingested=B3, batch_id="b3"),  # week 3: after the withdrawal, not owed
        ev("w1", "withdrawal", T + 9 * D, ingested=B3, batch_id="b3"),  # week 2: weeks 1 only owed
        enroll("P2", when=T, ingested=B3, batch_id="b3"),  # no diary at all: weeks 1–3 owed
    ], batches=[batch("b3", ingested=B3)])
    assert rows(con, "select diary_completeness from dq_site_week") == [{"diary_completeness": 0.25}]


def test_diaries_are_owed_up_to_week_52_only() -> None:
    late = T + 400 * D  # another patient's report, long after P1's follow-up ended
    con = derive([
        enroll("P1", when=T, ingested=late, batch_id="b"),
        *[report(f"r{w}", T + (7 * w - 3) * D, patient_id="P1", ingested=late, batch_id="b") for w in range(1, 53)],
        enroll("P2", when=late - 2 * D, ingested=late, batch_id="b"),
        report("q1", late - D, patient_id="P2", ingested=late, batch_id="b"),
    ], batches=[batch("b", ingested=late)])
    # P1: weeks 1–52 owed and kept; P2 owes nothing yet (day 1 is in week 1: owed and kept)
    assert rows(con, "select diary_completeness from dq_site_week") == [{"diary_completeness": 1.0}]
