"""The alert log: one alert per (event_id, flag), append-only, never repeated."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.config import Paths
from pipeline.store.files import atomic_write_parquet
from pipeline.store.warehouse import ALERT_SCHEMA, dataset_sql


def alert_id(event_id: str, flag: str) -> str:
    """Stable id: the same (event_id, flag) always gets the same alert_id."""
    return hashlib.sha256(f"{event_id}\x1f{flag}".encode()).hexdigest()[:20]


def raised_keys(paths: Paths) -> set[tuple[str, str]]:
    """(event_id, flag) pairs that already have an alert."""
    rows = duckdb.connect().execute(f"SELECT event_id, flag FROM ({dataset_sql(paths, 'alerts')})").fetchall()
    return {(str(e), str(f)) for e, f in rows}


def new_alerts_table(
    rows: Iterable[Mapping[str, Any]], already: set[tuple[str, str]], source: str, batch_id: str,
    raised_at: datetime | None = None,
) -> pa.Table:
    """Keep the rows whose (event_id, flag) has no alert yet (also within `rows`)."""
    raised_at = raised_at or datetime.now(UTC)
    seen = set(already)
    out: list[dict[str, Any]] = []
    for r in rows:
        key = (str(r["event_id"]), str(r["flag"]))
        if key in seen:
            continue
        seen.add(key)
        out.append({
            "alert_id": alert_id(*key), "site_id": r["site_id"], "patient_id": r.get("patient_id"),
            "event_id": key[0], "flag": key[1], "occurred_at": r.get("occurred_at"),
            "raised_at": raised_at, "validated": bool(r.get("validated", True)), "source": source,
            "batch_id": batch_id, "message": r.get("message"),
        })
    return pa.Table.from_pylist(out, schema=ALERT_SCHEMA)


def append_alerts(paths: Paths, rows: Iterable[Mapping[str, Any]], source: str = "derive") -> int:
    """Append alerts not raised before; returns how many are new.

    The caller holds `writer_lock(paths)`. Each row needs site_id, patient_id,
    event_id, flag (SAP §6 name), occurred_at; optional validated, message.
    """
    batch_id = f"{source}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    table = new_alerts_table(rows, raised_keys(paths), source, batch_id)
    if table.num_rows:
        atomic_write_parquet(table, paths.alerts_dir / f"{batch_id}.parquet")
    return table.num_rows
