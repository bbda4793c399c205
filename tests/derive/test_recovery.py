"""sql/recovery_times.sql + recovery.py: time to recovery, Kaplan–Meier and log-rank (SAP §7)."""

from __future__ import annotations

import pytest

from .factories import at, derive, enroll, report, rows
from .test_stats import logrank_by_hand


@pytest.fixture(scope="module")
def recovery():  # type: ignore[no-untyped-def]
    def patient(pid: str, arm: str, *diary: tuple[float, int | None]) -> list[dict]:  # type: ignore[type-arg]
        return [enroll(pid, arm=arm)] + [
            report(f"{pid}-{i}", at(day), patient_id=pid, global_recovery=gpe) for i, (day, gpe) in enumerate(diary)
        ]

    return derive([
        # surgery: recovered at weeks 2 and 4 (a GPE of 1 on day 0 does not count), censored at 3 and 0
        *patient("S1", "surgery", (0, 1), (7, 4), (14, 2), (21, 1)),
        *patient("S2", "surgery", (-2, 5), (28, 1)),
        *patient("S3", "surgery", (7, 4), (21, 3)),
        *patient("S4", "surgery", (-1, 4), (0, 3)),
        # conservative: recovered at week 8, censored at week 10
        *patient("C1", "conservative", (56, 2)),
        *patient("C2", "conservative", (35, 4), (70, 5)),
    ])


def test_recovery_and_censoring_times(recovery) -> None:  # type: ignore[no-untyped-def]
    got = rows(recovery, "select p.patient_id, r.time_weeks, r.recovered from recovery_times as r "
                         "join patients as p using (patient_key) order by p.patient_id")
    assert got == [
        {"patient_id": "C1", "time_weeks": 8.0, "recovered": True},
        {"patient_id": "C2", "time_weeks": 10.0, "recovered": False},
        {"patient_id": "S1", "time_weeks": 2.0, "recovered": True},
        {"patient_id": "S2", "time_weeks": 4.0, "recovered": True},
        {"patient_id": "S3", "time_weeks": 3.0, "recovered": False},
        {"patient_id": "S4", "time_weeks": 0.0, "recovered": False},
    ]


def test_one_km_row_per_distinct_time(recovery) -> None:  # type: ignore[no-untyped-def]
    got = rows(recovery, "select * from recovery_km order by arm desc, time_weeks")
    assert got == [
        {"arm": "surgery", "time_weeks": 0.0, "at_risk": 4, "events": 0, "censored": 1, "survival": 1.0},
        {"arm": "surgery", "time_weeks": 2.0, "at_risk": 3, "events": 1, "censored": 0,
         "survival": pytest.approx(2 / 3)},
        {"arm": "surgery", "time_weeks": 3.0, "at_risk": 2, "events": 0, "censored": 1,
         "survival": pytest.approx(2 / 3)},
        {"arm": "surgery", "time_weeks": 4.0, "at_risk": 1, "events": 1, "censored": 0, "survival": 0.0},
        {"arm": "conservative", "time_weeks": 8.0, "at_risk": 2, "events": 1, "censored": 0, "survival": 0.5},
        {"arm": "conservative", "time_weeks": 10.0, "at_risk": 1, "events": 0, "censored": 1, "survival": 0.5},
    ]


def test_summary_median_recovered_proportions_and_logrank(recovery) -> None:  # type: ignore[no-untyped-def]
    p = logrank_by_hand([2.0, 4.0, 3.0, 0.0, 8.0, 10.0], ["s"] * 4 + ["c"] * 2,
                        [True, True, False, False, True, False])
    got = rows(recovery, "select * from recovery_summary order by arm desc")
    assert got == [
        {"arm": "surgery", "n": 4, "events": 2, "median_weeks": 4.0, "recovered_w2": pytest.approx(1 / 3),
         "recovered_w4": 1.0, "recovered_w8": None, "recovered_w12": None, "recovered_w26": None,
         "recovered_w52": None, "logrank_p": pytest.approx(p)},
        # the curve is exactly 0.5 at week 8: that is the median; week 2 lies before the first time
        {"arm": "conservative", "n": 2, "events": 1, "median_weeks": 8.0, "recovered_w2": 0.0,
         "recovered_w4": 0.0, "recovered_w8": 0.5, "recovered_w12": None, "recovered_w26": None,
         "recovered_w52": None, "logrank_p": pytest.approx(p)},
    ]


def test_an_arm_without_patients_is_listed_and_no_logrank_with_one_arm() -> None:
    con = derive([enroll(arm="surgery"), report("r1", at(14), global_recovery=2)])
    assert rows(con, "select arm, n, events, median_weeks, recovered_w2, logrank_p from recovery_summary "
                     "order by arm") == [
        {"arm": "conservative", "n": 0, "events": 0, "median_weeks": None, "recovered_w2": None, "logrank_p": None},
        {"arm": "surgery", "n": 1, "events": 1, "median_weeks": 2.0, "recovered_w2": 1.0, "logrank_p": None},
    ]
