"""alerts.py: derive-time alerts for the red flags only derivation can see (DTS §5)."""

from __future__ import annotations

from datetime import timedelta

import duckdb

from pipeline.config import Paths
from pipeline.derive.api import derive
from pipeline.store.warehouse import dataset_sql

from .factories import INGESTED, STUDY, at, enroll, ev, report, write_warehouse


def alerts(paths: Paths) -> list[dict]:  # type: ignore[type-arg]
    sql = f"select event_id, flag, source, validated, occurred_at from ({dataset_sql(paths, 'alerts')}) order by all"
    return duckdb.connect().sql(sql).to_arrow_table().to_pylist()


EVENTS = [
    enroll(side="left"),
    report("r1", at(2), leg=3, paresthesia="tingling", paresthesia_extent="thigh"),
    report("r2", at(4), leg=6, paresthesia="numbness", paresthesia_extent="foot", bilateral_symptoms=True),
    report("r3", at(5), leg=6, bilateral_symptoms=True, bladder_dysfunction=True),  # bladder: the ingest's alert
    ev("a0", "assessment", at(-1), dorsiflexion_mrc=5),
    ev("a1", "assessment", at(12), dorsiflexion_mrc=3),
    ev("f1", "red_flag", at(13), flag="progressive_motor_deficit"),  # reported: the ingest's alert
]


def test_derived_only_flags_raise_one_alert_per_observation_once(paths: Paths) -> None:
    write_warehouse(paths.warehouse, [{**e, "batch_id": "b1"} for e in EVENTS])
    first = derive(paths, STUDY)
    expected = [
        {"event_id": "a1", "flag": "MOTOR", "source": "derive", "validated": True, "occurred_at": at(12)},
        {"event_id": "r2", "flag": "BILATERAL", "source": "derive", "validated": True, "occurred_at": at(4)},
        {"event_id": "r2", "flag": "PARESTHESIA_SPREAD", "source": "derive", "validated": True,
         "occurred_at": at(4)},
        {"event_id": "r3", "flag": "BILATERAL", "source": "derive", "validated": True, "occurred_at": at(5)},
    ]
    assert first.alerts_raised == 4
    assert alerts(paths) == expected
    again = derive(paths, STUDY)
    assert again.alerts_raised == 0
    assert alerts(paths) == expected


def test_no_alerts_when_deriving_as_of_a_past_cutoff(paths: Paths) -> None:
    write_warehouse(paths.warehouse, [{**e, "batch_id": "b1"} for e in EVENTS])
    result = derive(paths, STUDY, as_of=INGESTED + timedelta(days=1))
    assert result.alerts_raised == 0
    assert alerts(paths) == []
