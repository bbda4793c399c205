"""The tables a report is computed from, read from the warehouse or given literally.

`ReportData` is everything a report shows: the derived tables of interface.md,
the alert log, the quarantine and the batch ledger, plus the as-of time and the
event-log fingerprint that every caption cites. Renderers take a `ReportData`
and nothing else, so tests build one from literal tables with `ReportData.build`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import Paths, Study
from pipeline.report.render import iso_utc
from pipeline.store.warehouse import (
    ALERT_SCHEMA,
    BATCH_SCHEMA,
    QUARANTINE_SCHEMA,
    dataset_sql,
    fingerprint,
    writer_lock,
)

log = logging.getLogger(__name__)

#: Derived tables (interface.md) and the columns the reports read from them.
DERIVED_COLUMNS: dict[str, tuple[str, ...]] = {
    "trajectory": ("site_id", "patient_id", "arm", "param", "week", "value", "baseline", "change", "pct_change"),
    "patient_week": ("site_id", "patient_id", "arm", "week", "status", "centralization", "responder",
                     "improvement_signs"),
    "treatment_flares": ("site_id", "patient_id", "treatment_event_id", "modality", "pre_pain", "peak_pain",
                         "duration_days", "classification"),
    "red_flag_occurrences": ("site_id", "patient_id", "arm", "flag", "event_id", "occurred_at", "study_day",
                             "prevalent"),
    "red_flag_incidence": ("stratum_type", "stratum", "flag", "at_risk", "cases", "patient_weeks", "rate_per_100pw",
                           "rate_ci_low", "rate_ci_high", "proportion", "proportion_ci_low", "proportion_ci_high"),
    "recovery_km": ("arm", "time_weeks", "at_risk", "events", "censored", "survival"),
    "recovery_summary": ("arm", "n", "events", "median_weeks", "recovered_w2", "recovered_w4", "recovered_w8",
                         "recovered_w12", "recovered_w26", "recovered_w52", "logrank_p"),
    "dq_site_week": ("site_id", "iso_week", "received", "accepted", "rejected", "warnings", "duplicates",
                     "late_entries", "lag_p50_hours", "lag_p90_hours", "diary_completeness"),
}

#: Stored datasets (pipeline.store.warehouse) and the time column an as-of cutoff applies to.
LOG_DATASETS: dict[str, tuple[pa.Schema, str]] = {
    "alerts": (ALERT_SCHEMA, "raised_at"),
    "quarantine": (QUARANTINE_SCHEMA, "ingested_at"),
    "batches": (BATCH_SCHEMA, "ingested_at"),
}

LIST_COLUMNS = {"rules", "messages", "file_rules", "unknown_columns"}
#: How long a report waits for an ingest or derive to finish before giving up (seconds).
LOCK_TIMEOUT = 900.0


def _columns(name: str) -> tuple[str, ...]:
    if name in DERIVED_COLUMNS:
        return DERIVED_COLUMNS[name]
    return tuple(LOG_DATASETS[name][0].names)


def to_frame(name: str, table: pa.Table | pd.DataFrame | None) -> pd.DataFrame:
    """A table as pandas with at least the expected columns (missing ones null); lists as Python lists."""
    if table is None:
        frame = pd.DataFrame()
    elif isinstance(table, pa.Table):
        frame = table.to_pandas()
    else:
        frame = table.copy()
    for col in _columns(name):
        if col not in frame.columns:
            frame[col] = [[] for _ in range(len(frame))] if col in LIST_COLUMNS else pd.Series(
                [None] * len(frame), dtype="object")
    for col in LIST_COLUMNS & set(frame.columns):
        frame[col] = [list(v) if v is not None and not isinstance(v, float) else [] for v in frame[col]]
    for col in frame.columns:
        if col.endswith("_at") and not pd.api.types.is_datetime64_any_dtype(frame[col]):
            frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class ReportData:
    """The tables behind one report, with the as-of time and fingerprint they were computed from."""

    study: Study
    tables: Mapping[str, pd.DataFrame]
    fingerprint: str
    as_of: datetime | None = None
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def build(
        cls, study: Study, tables: Mapping[str, pa.Table | pd.DataFrame], fingerprint: str = "",
        as_of: datetime | None = None, generated_at: datetime | None = None,
    ) -> ReportData:
        """From literal tables; absent tables are empty, absent columns null."""
        names = (*DERIVED_COLUMNS, *LOG_DATASETS)
        frames = {name: to_frame(name, tables.get(name)) for name in names}
        return cls(study, frames, fingerprint, as_of, generated_at or datetime.now(UTC))

    def table(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    @property
    def reference_time(self) -> datetime:
        """The instant the report describes: the cutoff, or the time it was generated."""
        return self.as_of or self.generated_at

    @property
    def reference_label(self) -> str:
        """The reference time in full: ISO 8601, UTC, to the second ('2026-11-21T17:56:44Z')."""
        if self.as_of is not None:
            return iso_utc(self.as_of)
        return iso_utc(self.generated_at.replace(microsecond=0))

    @property
    def as_of_label(self) -> str:
        kind = "ingestion cutoff" if self.as_of is not None else "every ingested event"
        return f"as of {self.reference_label} (UTC; {kind})"

    @property
    def generated_label(self) -> str:
        return iso_utc(self.generated_at.replace(microsecond=0))

    @property
    def provenance(self) -> str:
        """What every caption ends with: the as-of time and the event-log fingerprint."""
        return f"Computed {self.as_of_label} from the event log with fingerprint {self.fingerprint or 'n/a'}."

    @property
    def site_names(self) -> dict[str, str]:
        return {s.id: s.name or s.id for s in self.study.sites}


def _read_log(name: str, paths: Paths, as_of: datetime | None) -> pa.Table:
    time_col = LOG_DATASETS[name][1]
    sql = f"SELECT * FROM ({dataset_sql(paths, name)})"
    con = duckdb.connect()
    try:
        if as_of is not None:
            con.execute("SET TimeZone = 'UTC'")
            return con.sql(f"{sql} WHERE {time_col} <= $cutoff", params={"cutoff": as_of}).to_arrow_table()
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def _read_derived_db(paths: Paths) -> dict[str, pa.Table]:
    out: dict[str, pa.Table] = {}
    if not paths.db_path.exists():
        log.warning("no %s yet: run `trialpipe derive`; the outcome report will be empty", paths.db_path)
        return out
    con = duckdb.connect(str(paths.db_path), read_only=True)
    try:
        present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        for name in DERIVED_COLUMNS:
            if name in present:
                out[name] = con.sql(f'SELECT * FROM "{name}"').to_arrow_table()
            else:
                log.warning("derived table %s is missing from %s", name, paths.db_path)
    finally:
        con.close()
    return out


def _read_derived_export(paths: Paths, study: Study, as_of: datetime) -> dict[str, pa.Table]:
    from pipeline.derive.api import export

    out: dict[str, pa.Table] = {}
    with tempfile.TemporaryDirectory(prefix="trialpipe-report-") as tmp:
        for path in export(paths, study, fmt="parquet", out=Path(tmp), as_of=as_of):
            name = Path(path).name.removesuffix(".parquet")
            if name in DERIVED_COLUMNS:
                out[name] = pq.read_table(path)
    return out


def _read_all(paths: Paths, study: Study, as_of: datetime | None) -> tuple[dict[str, Any], str]:
    derived = _read_derived_db(paths) if as_of is None else _read_derived_export(paths, study, as_of)
    tables: dict[str, Any] = dict(derived)
    for name in LOG_DATASETS:
        tables[name] = _read_log(name, paths, as_of)
    return tables, fingerprint(paths, as_of)


def load_report_data(paths: Paths, study: Study, as_of: datetime | None = None) -> ReportData:
    """Read everything a report shows: derived tables (as of a cutoff via export), log tables, fingerprint.

    The present is read under the warehouse's writer lock, so derived tables, logs and fingerprint are
    one consistent snapshot (an ingest or derive in progress is waited for, up to LOCK_TIMEOUT). A cutoff
    only reads immutable files up to it and needs no lock. Do not call this while holding the lock.
    """
    if as_of is None:
        with writer_lock(paths, timeout=LOCK_TIMEOUT):
            generated_at = datetime.now(UTC)
            tables, fp = _read_all(paths, study, None)
    else:
        generated_at = datetime.now(UTC)
        tables, fp = _read_all(paths, study, as_of)
    return ReportData.build(study, tables, fp, as_of, generated_at)
