"""sql/macros.sql: study days on absolute instants (floor, not truncation) and analysis weeks (SAP §2)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from .factories import T0, at, derive, enroll, report, rows


@pytest.fixture(scope="module")
def con():  # type: ignore[no-untyped-def]
    return derive([])


@pytest.mark.parametrize(("offset", "day"), [
    (timedelta(0), 0),
    (timedelta(hours=23, minutes=59, seconds=59), 0),
    (timedelta(days=1), 1),
    (timedelta(microseconds=-1), -1),
    (timedelta(hours=-1), -1),
    (timedelta(days=-1), -1),
    (timedelta(days=-1, microseconds=-1), -2),
    (timedelta(days=-14), -14),
    (timedelta(days=-14, microseconds=-1), -15),
    (timedelta(days=400, hours=5), 400),
])
def test_study_day_is_the_floor_of_elapsed_days(con, offset: timedelta, day: int) -> None:  # type: ignore[no-untyped-def]
    ((got,),) = con.execute("select study_day(?::timestamptz, ?::timestamptz)", [T0 + offset, T0]).fetchall()
    assert got == day


@pytest.mark.parametrize(("day", "week"), [
    (-15, None), (-14, 0), (-1, 0), (0, 0), (1, 1), (7, 1), (8, 2), (14, 2), (15, 3), (364, 52),
])
def test_analysis_week(con, day: int, week: int | None) -> None:  # type: ignore[no-untyped-def]
    ((got,),) = con.execute("select analysis_week(?::integer)", [day]).fetchall()
    assert got == week


def test_study_days_follow_the_enrollment_instant_not_the_calendar_day() -> None:
    # enrolled 09:00; a report at 08:00 the next day is still study day 0, at 09:00 day 1
    c = derive([enroll(), report("r1", at(1, hours=-1)), report("r2", at(1)), report("r3", at(-14)),
                report("r4", at(-14, hours=-1))])
    assert rows(c, "select event_id, study_day, week from observations order by event_id") == [
        {"event_id": "r1", "study_day": 0, "week": 0},
        {"event_id": "r2", "study_day": 1, "week": 1},
        {"event_id": "r3", "study_day": -14, "week": 0},
        # r4, before day -14, takes part in nothing
    ]
