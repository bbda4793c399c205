"""Derive-time alerts (DTS §5 "Safety first"): red flags only derivation can see.

Motor decline (assessments), new bilateral symptoms and paresthesia spread
(diaries) are not visible to the row checks of the ingest; every observation at
which derivation finds one raises an alert with source = derive. The alert log
keeps one alert per (site, patient, event_id, flag), so a re-derivation never repeats one.
"""

from __future__ import annotations

from typing import Any

import duckdb

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
    found = con.sql("""
        select site_id, patient_id, event_id, flag, occurred_at, study_day
        from derive_state.derived_red_flags
        order by occurred_at, event_id, flag, site_id, patient_id
    """).to_arrow_table().to_pylist()
    return [
        {
            "site_id": r["site_id"], "patient_id": r["patient_id"], "event_id": r["event_id"], "flag": r["flag"],
            "occurred_at": r["occurred_at"], "validated": True,
            "message": f"{r['flag']}: {MESSAGES[r['flag']]} (study day {r['study_day']})",
        }
        for r in found
    ]
