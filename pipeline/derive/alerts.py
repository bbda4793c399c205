"""Derive-time alerts (DTS §5 "Safety first"): red flags only derivation can see.

Motor decline (assessments), new bilateral symptoms and paresthesia spread
(diaries) are not visible to the row checks of the ingest; every observation at
which derivation finds one raises an alert with source = derive. The alert log
keeps one alert per (site, patient, event_id, flag), so a re-derivation never repeats one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MESSAGES = {
    "MOTOR": "motor decline in an assessment",
    "BILATERAL": "bilateral symptoms reported in a diary (affected side is not bilateral)",
    "PARESTHESIA_SPREAD": "paresthesia spreading distally with rising leg pain in a diary",
}


def derived_alerts(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Alert rows for every derived-only red-flag occurrence of every patient.

    Read from the stored summary derive_state.derived_red_flags, not from this run's patients: a
    derivation killed after its tables were stored and before its alerts were appended leaves them
    to the next one, which may not touch those patients again.
    """
    # instants as epoch microseconds: converting Arrow timestamps to Python would import pandas
    found = con.execute("""
        select site_id, patient_id, event_id, flag, epoch_us(occurred_at), study_day
        from derive_state.derived_red_flags
        order by occurred_at, event_id, flag, site_id, patient_id
    """).fetchall()
    return [
        {
            "site_id": site_id, "patient_id": patient_id, "event_id": event_id, "flag": flag,
            "occurred_at": EPOCH + timedelta(microseconds=occurred_us), "validated": True,
            "message": f"{flag}: {MESSAGES[flag]} (study day {study_day})",
        }
        for site_id, patient_id, event_id, flag, occurred_us, study_day in found
    ]
