"""sql/treatment_flares.sql: "worse before better" after a treatment (SAP §5)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from .factories import at, derive, enroll, ev, report, rows

T = 10  # the treatment's study day


def flares(*reports: dict) -> list[dict]:  # type: ignore[type-arg]
    con = derive([enroll(), ev("t1", "treatment", at(T), modality="dry_needling"), *reports])
    return rows(con, "select * from treatment_flares")


def row(pre, peak, duration, classification) -> dict:  # type: ignore[no-untyped-def, type-arg]
    return {"site_id": "S1", "patient_id": "P1", "treatment_event_id": "t1", "modality": "dry_needling",
            "pre_pain": pre, "peak_pain": peak, "duration_days": duration, "classification": classification}


def test_an_expected_flare_resolves_within_seven_days() -> None:
    got = flares(
        report("r1", at(T - 5), leg=4),
        report("r2", at(T - 1), leg=5),  # P0: the latest in the 7 days before
        report("r3", at(T + 1), leg=8),  # the peak (first of the highest)
        report("r4", at(T + 2), leg=8),
        report("r5", at(T + 3, hours=12), leg=5),  # back to P0: resolved after 3.5 days
    )
    assert got == [row(5, 8, 3.5, "expected_flare")]


def test_a_flare_resolved_after_seven_days_is_prolonged() -> None:
    got = flares(report("r1", at(T - 1), leg=5), report("r2", at(T + 7), leg=7), report("r3", at(T + 9), leg=6),
                 report("r4", at(T + 10), leg=3))
    assert got == [row(5, 7, 10.0, "prolonged_flare")]


def test_an_unresolved_flare_is_prolonged_without_duration() -> None:
    got = flares(report("r1", at(T - 1), leg=5), report("r2", at(T + 2), leg=9), report("r3", at(T + 20), leg=6))
    assert got == [row(5, 9, None, "prolonged_flare")]


def test_resolution_is_looked_for_only_after_the_peak() -> None:
    # r2 is below P0 but before the peak; the flare resolves at r4
    got = flares(report("r1", at(T - 1), leg=4), report("r2", at(T + 1), leg=2), report("r3", at(T + 2), leg=7),
                 report("r4", at(T + 4), leg=4))
    assert got == [row(4, 7, 4.0, "expected_flare")]


def test_a_rise_of_less_than_two_points_is_no_flare() -> None:
    got = flares(report("r1", at(T - 1), leg=5), report("r2", at(T + 1), leg=6), report("r3", at(T + 8), leg=9))
    assert got == [row(5, None, None, "no_flare")]


def test_without_pain_in_the_seven_days_before_there_is_no_baseline() -> None:
    got = flares(report("r1", at(T - 7, hours=-1), leg=5), report("r2", at(T + 1), leg=9))
    assert got == [row(None, None, None, "no_baseline")]


@pytest.mark.parametrize(("pre_at", "expected"), [
    (at(T - 7), row(5, 8, None, "prolonged_flare")),  # exactly 7 days before: P0
    (at(T), row(None, None, None, "no_baseline")),  # at the treatment instant: not before it
])
def test_the_seven_days_before_are_half_open(pre_at, expected) -> None:  # type: ignore[no-untyped-def]
    assert flares(report("r1", pre_at, leg=5), report("r2", at(T + 1), leg=8)) == [expected]


def test_the_flare_window_ends_seven_days_after_inclusive() -> None:
    assert flares(report("r1", at(T - 1), leg=5), report("r2", at(T + 7), leg=8)) == [row(5, 8, None,
                                                                                         "prolonged_flare")]
    assert flares(report("r1", at(T - 1), leg=5),
                  report("r2", at(T + 7) + timedelta(microseconds=1), leg=8)) == [row(5, None, None, "no_flare")]


def test_every_effective_treatment_is_listed() -> None:
    con = derive([enroll(), ev("t1", "treatment", at(3), modality="nsaid"),
                  ev("t2", "treatment", at(20), modality="surgery"), report("r1", at(19), leg=6)])
    assert rows(con, "select treatment_event_id, modality, classification from treatment_flares order by 1") == [
        {"treatment_event_id": "t1", "modality": "nsaid", "classification": "no_baseline"},
        {"treatment_event_id": "t2", "modality": "surgery", "classification": "no_flare"},
    ]
