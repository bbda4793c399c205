"""Clock of the simulated study: local UTC offsets and ISO-8601 rendering.

Instants are int64 seconds since the Unix epoch (UTC) throughout the simulator;
only at the end are they rendered as ISO-8601 text with an offset, the form the
DTS (§3) requires. Rendering goes through two small lookup tables (the dates of
the study period and the 86,400 times of day) so millions of timestamps take a
fraction of a second.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DAY = 86_400
HOUR = 3_600
MINUTE = 60

#: UTC offsets (minutes) a rendered timestamp may carry, and their ISO-8601 suffixes.
OFFSET_SUFFIX = {0: "Z", 60: "+01:00", 120: "+02:00", -300: "-05:00"}

def parse_instant(text: str) -> int:
    """Seconds since the epoch of an ISO-8601 timestamp with an offset."""
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no offset")
    return int(ts.timestamp())


def _last_sunday(year: int, month: int) -> date:
    last = date(year, month + 1, 1) - timedelta(days=1)  # month < 12
    return last - timedelta(days=(last.weekday() + 1) % 7)


def amsterdam_offset(utc_s: np.ndarray) -> np.ndarray:
    """Europe/Amsterdam UTC offset in minutes (+60 winter, +120 summer; EU rule, change at 01:00 UTC)."""
    if utc_s.size == 0:
        return np.zeros(0, dtype=np.int16)
    first = datetime.fromtimestamp(int(utc_s.min()), tz=UTC).year - 1
    last = datetime.fromtimestamp(int(utc_s.max()), tz=UTC).year + 1
    bounds = []
    for year in range(first, last + 1):
        for month in (3, 10):
            d = _last_sunday(year, month)
            bounds.append(int((d - date(1970, 1, 1)).days) * DAY + HOUR)
    in_summer = np.searchsorted(np.asarray(bounds, dtype=np.int64), utc_s, side="right") % 2 == 1
    return np.where(in_summer, 120, 60).astype(np.int16)


@cache
def _times_of_day() -> pa.Array:
    """"00:00:00" ... "23:59:59", indexed by second of the day."""
    t = np.arange(DAY)
    return pa.array([f"{h:02d}:{m:02d}:{s:02d}" for h, m, s in zip(t // HOUR, t // MINUTE % 60, t % 60, strict=True)])


def render(utc_s: np.ndarray, offset_min: np.ndarray) -> pa.Array:
    """ISO-8601 strings (seconds precision) of `utc_s` written in local time at `offset_min`."""
    if utc_s.size == 0:
        return pa.array([], pa.string())
    local = utc_s.astype(np.int64) + offset_min.astype(np.int64) * MINUTE
    days = local // DAY
    first = int(days.min())
    span = np.arange(first, int(days.max()) + 1).astype("datetime64[D]")
    date_text = pa.array((np.datetime_as_string(span).astype(object) + "T").tolist(), pa.string())
    offsets = sorted(OFFSET_SUFFIX)
    suffix_text = pa.array([OFFSET_SUFFIX[o] for o in offsets])
    suffix_code = np.searchsorted(np.asarray(offsets), offset_min)
    return pc.binary_join_element_wise(
        pc.take(date_text, pa.array(days - first)),
        pc.take(_times_of_day(), pa.array(local - days * DAY)),
        pc.take(suffix_text, pa.array(suffix_code)),
        "",
    )


def render_one(utc_s: int, offset_min: int) -> str:
    """One ISO-8601 timestamp with its offset (as `render`, for a single value)."""
    return render_naive(utc_s, offset_min) + OFFSET_SUFFIX[offset_min]


def render_naive(utc_s: int, offset_min: int) -> str:
    """One local timestamp without its offset (a fault: DTS rejects it as `naive_timestamp`)."""
    return (datetime(1970, 1, 1) + timedelta(seconds=utc_s + offset_min * MINUTE)).isoformat(timespec="seconds")
