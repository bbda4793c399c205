"""Literal events for derivation tests: build rows, derive in an in-memory DuckDB, read tables back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import Site, Study
from pipeline.derive.build import Sources, build_tables
from pipeline.schema import EVENT_SCHEMA
from pipeline.store.warehouse import BATCH_SCHEMA, QUARANTINE_SCHEMA

#: randomisation instant of the default patient: study day 0 starts here (a Monday)
T0 = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
#: default ingestion instant (after everything the tests record)
INGESTED = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)

STUDY = Study(study_id="TEST", arms=("surgery", "conservative"), sites=(Site("S1"), Site("S2")))


def at(days: float = 0, hours: float = 0, start: datetime = T0) -> datetime:
    """An instant `days` (+ `hours`) after `start`."""
    return start + timedelta(days=days, hours=hours)


def ev(event_id: str, event_type: str, when: datetime, patient_id: str = "P1", site_id: str = "S1",
       recorded: datetime | None = None, ingested: datetime = INGESTED, **payload: Any) -> dict[str, Any]:
    """One accepted event (lineage filled with harmless defaults)."""
    row: dict[str, Any] = {
        "event_id": event_id, "event_type": event_type, "site_id": site_id, "patient_id": patient_id,
        "occurred_at": when, "recorded_at": recorded or when, "ingested_at": ingested,
        "batch_id": payload.pop("batch_id", f"b-{site_id}"), "warnings": payload.pop("warnings", []),
        "schema_version": 1,
    }
    row.update(payload)
    return row


def enroll(patient_id: str = "P1", when: datetime = T0, arm: str = "surgery", side: str = "left",
           site_id: str = "S1", event_id: str | None = None, **kw: Any) -> dict[str, Any]:
    return ev(event_id or f"enr-{patient_id}", "enrollment", when, patient_id, site_id,
              arm=arm, age_years=40, affected_side=side, **kw)


def report(event_id: str, when: datetime, leg: int = 5, back: int = 3, extent: str = "calf",
           paresthesia: str = "none", patient_id: str = "P1", **kw: Any) -> dict[str, Any]:
    return ev(event_id, "symptom_report", when, patient_id, leg_pain_nrs=leg, back_pain_nrs=back,
              pain_extent=extent, paresthesia=paresthesia, **kw)


def assess(event_id: str, when: datetime, patient_id: str = "P1", **kw: Any) -> dict[str, Any]:
    return ev(event_id, "assessment", when, patient_id, **kw)


def events_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    names = EVENT_SCHEMA.names
    rows = list(rows)
    for r in rows:
        unknown = set(r) - set(names)
        assert not unknown, f"not an event column: {unknown}"
    return pa.Table.from_pylist([{n: r.get(n) for n in names} for r in rows], schema=EVENT_SCHEMA)


def table_of(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema)


def derive(events: Iterable[Mapping[str, Any]], study: Study = STUDY,
           batches: Iterable[Mapping[str, Any]] = (), quarantine: Iterable[Mapping[str, Any]] = ()
           ) -> duckdb.DuckDBPyConnection:
    """Derive every table from literal rows in a fresh in-memory database."""
    con = duckdb.connect()
    con.register("events_arrow", events_table(events))
    con.register("batches_arrow", table_of(batches, BATCH_SCHEMA))
    con.register("quarantine_arrow", table_of(quarantine, QUARANTINE_SCHEMA))
    con.execute("create table events_log as select * from events_arrow")
    con.execute("create table batches_log as select * from batches_arrow")
    con.execute("create table quarantine_log as select * from quarantine_arrow")
    build_tables(con, study, Sources(
        events="select * from events_log", batches="select * from batches_log",
        quarantine="select * from quarantine_log",
    ))
    return con


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    """Query result as a list of dicts (timestamps as aware datetimes)."""
    return con.sql(sql).to_arrow_table().to_pylist()


def batch(batch_id: str, site_id: str = "S1", ingested: datetime = INGESTED, **kw: Any) -> dict[str, Any]:
    """One ledger record (BATCH_SCHEMA)."""
    row: dict[str, Any] = {
        "batch_id": batch_id, "site_id": site_id, "source_file": f"{batch_id}.csv", "source_sha256": batch_id,
        "status": "ingested", "file_rules": [], "received": 0, "accepted": 0, "rejected": 0, "duplicates": 0,
        "warnings": 0, "unknown_columns": [], "ingested_at": ingested,
    }
    row.update(kw)
    return row


def write_warehouse(warehouse: Path, events: Iterable[Mapping[str, Any]],
                    quarantine: Iterable[Mapping[str, Any]] = ()) -> None:
    """Store events in the warehouse layout: one Parquet file and one ledger record per batch_id.

    Each batch's ingestion instant is its events' latest ingested_at; call again to append batches.
    """
    by_batch: dict[str, list[Mapping[str, Any]]] = {}
    for e in events:
        by_batch.setdefault(str(e["batch_id"]), []).append(e)
    for batch_id, rows in by_batch.items():
        site = str(rows[0]["site_id"])
        ingested = max(r["ingested_at"] for r in rows)
        folder = warehouse / "events" / f"site={site}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(events_table(rows), folder / f"{batch_id}.parquet")
        record = batch(batch_id, site, ingested, received=len(rows), accepted=len(rows))
        (warehouse / "batches").mkdir(parents=True, exist_ok=True)
        pq.write_table(table_of([record], BATCH_SCHEMA), warehouse / "batches" / f"{batch_id}.parquet")
    quarantine = list(quarantine)
    if quarantine:
        site = str(quarantine[0]["site_id"])
        folder = warehouse / "quarantine" / f"site={site}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table_of(quarantine, QUARANTINE_SCHEMA), folder / f"{quarantine[0]['batch_id']}.parquet")
