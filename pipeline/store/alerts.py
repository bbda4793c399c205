"""The alert log: one alert per (site_id, patient_id, event_id, flag), append-only, never repeated.

DTS §5 and interface.md say "one per (event_id, flag)". Keying on the patient
as well is the clinically safer reading (docs/delivering-data.md §9): a rejected
row of another patient that reuses an alerted event_id still raises its alert,
while reruns, re-deliveries, corrected resubmissions and re-derivations of the
same patient's event never repeat one.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.config import Paths
from pipeline.store import chain
from pipeline.store.files import atomic_write_parquet
from pipeline.store.warehouse import ALERT_SCHEMA, dataset_sql

#: (site_id, patient_id, event_id, flag); patient_id is None when a rejected row had none
AlertKey = tuple[str, str | None, str, str]


def alert_key(site_id: Any, patient_id: Any, event_id: Any, flag: Any) -> AlertKey:
    return (str(site_id), None if patient_id is None else str(patient_id), str(event_id), str(flag))


def alert_id(key: AlertKey) -> str:
    """Stable id: the same (site_id, patient_id, event_id, flag) always gets the same alert_id."""
    site_id, patient_id, event_id, flag = key
    return hashlib.sha256("\x1f".join((site_id, patient_id or "", event_id, flag)).encode()).hexdigest()[:20]


def raised_keys(paths: Paths) -> set[AlertKey]:
    """The keys that already have an alert."""
    sql = f"SELECT site_id, patient_id, event_id, flag FROM ({dataset_sql(paths, 'alerts')})"
    return {alert_key(*r) for r in duckdb.connect().execute(sql).fetchall()}


def new_alerts_table(
    rows: Iterable[Mapping[str, Any]], already: set[AlertKey], source: str, batch_id: str,
    raised_at: datetime | None = None,
) -> pa.Table:
    """Keep the rows whose key has no alert yet (also within `rows`), and add their keys to `already`.

    A caller that raises alerts batch by batch passes the same set each time, so
    a signal repeated in a later batch of the same run is not alerted twice.
    """
    raised_at = raised_at or datetime.now(UTC)
    out: list[dict[str, Any]] = []
    for r in rows:
        key = alert_key(r["site_id"], r.get("patient_id"), r["event_id"], r["flag"])
        if key in already:
            continue
        already.add(key)
        out.append({
            "alert_id": alert_id(key), "site_id": r["site_id"], "patient_id": r.get("patient_id"),
            "event_id": key[2], "flag": key[3], "occurred_at": r.get("occurred_at"),
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
        target = paths.alerts_dir / f"{batch_id}.parquet"
        atomic_write_parquet(table, target)
        chain.append_link(paths, batch_id, "derive_alerts", [target])  # the link is the commit point
    return table.num_rows
