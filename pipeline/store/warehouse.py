"""The DuckDB side of the warehouse: one writer, bounded memory, views over the log."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
from filelock import FileLock

from pipeline.config import Paths
from pipeline.read_sql import sql_literal
from pipeline.schema import EVENT_SCHEMA
from pipeline.store import chain

MEMORY_LIMIT = os.environ.get("TRIALPIPE_MEMORY_LIMIT", "1GB")
#: trial.duckdb is written in a storage format that DuckDB clients from 1.2 on can read (the
#: newest format would shut out every client older than the DuckDB trialpipe runs on)
STORAGE_COMPATIBILITY = "v1.2.0"

QUARANTINE_SCHEMA = pa.schema([
    ("batch_id", pa.string()),
    ("site_id", pa.string()),
    ("source_file", pa.string()),
    ("source_sha256", pa.string()),
    ("source_row", pa.int64()),
    ("event_id", pa.string()),
    ("rules", pa.list_(pa.string())),
    ("messages", pa.list_(pa.string())),
    ("raw", pa.string()),
    ("ingested_at", pa.timestamp("us", tz="UTC")),
])

ALERT_SCHEMA = pa.schema([
    ("alert_id", pa.string()),
    ("site_id", pa.string()),
    ("patient_id", pa.string()),
    ("event_id", pa.string()),
    ("flag", pa.string()),
    ("occurred_at", pa.timestamp("us", tz="UTC")),
    ("raised_at", pa.timestamp("us", tz="UTC")),
    ("validated", pa.bool_()),
    ("source", pa.string()),
    ("batch_id", pa.string()),
    ("message", pa.string()),
])

BATCH_SCHEMA = pa.schema([
    ("batch_id", pa.string()),
    ("site_id", pa.string()),
    ("source_file", pa.string()),
    ("source_sha256", pa.string()),
    ("source_size", pa.int64()),
    ("source_mtime_ns", pa.int64()),
    ("format", pa.string()),
    ("status", pa.string()),  # ingested | rejected | file_duplicate
    ("run_id", pa.string()),
    ("file_rules", pa.list_(pa.string())),
    ("received", pa.int64()),
    ("accepted", pa.int64()),
    ("rejected", pa.int64()),
    ("duplicates", pa.int64()),
    ("warnings", pa.int64()),
    ("unknown_columns", pa.list_(pa.string())),
    ("rule_counts", pa.map_(pa.string(), pa.int64())),
    ("message", pa.string()),
    ("ingested_at", pa.timestamp("us", tz="UTC")),
    # the hash chain (pipeline.store.chain): this record's number in commit order, the SHA-256 of the
    # link file before it, and every file the batch committed; null in records written before the chain
    ("chain_seq", pa.int64()),
    ("chain_prev", pa.string()),
    ("files", pa.list_(pa.struct([("path", pa.string()), ("sha256", pa.string()), ("bytes", pa.int64())]))),
])

DATASETS: dict[str, tuple[str, pa.Schema]] = {
    "events": ("events/site=*/*.parquet", EVENT_SCHEMA),
    "quarantine": ("quarantine/site=*/*.parquet", QUARANTINE_SCHEMA),
    "alerts": ("alerts/*.parquet", ALERT_SCHEMA),
    "batches": ("batches/*.parquet", BATCH_SCHEMA),
}


@contextmanager
def writer_lock(paths: Paths, timeout: float = -1) -> Iterator[None]:
    """Exclusive lock for every write to the warehouse (one process at a time)."""
    paths.locks_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(paths.locks_dir / "writer.lock"), timeout=timeout):
        yield



def duck_type(t: pa.DataType) -> str:
    """The DuckDB type of an Arrow type of the stored schemas."""
    if pa.types.is_list(t):
        return duck_type(t.value_type) + "[]"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    if pa.types.is_struct(t):
        return "STRUCT(" + ", ".join(f"{f.name} {duck_type(f.type)}" for f in t) + ")"
    if pa.types.is_map(t):
        return f"MAP({duck_type(t.key_type)}, {duck_type(t.item_type)})"
    return {
        pa.string(): "VARCHAR", pa.int32(): "INTEGER", pa.int64(): "BIGINT", pa.bool_(): "BOOLEAN",
    }[t]


def empty_select(schema: pa.Schema) -> str:
    cols = ", ".join(f"CAST(NULL AS {duck_type(f.type)}) AS {f.name}" for f in schema)
    return f"SELECT {cols} WHERE false"


#: columns added to a stored schema later: files written before them read as NULL
ADDED_COLUMNS = frozenset({"chain_seq", "chain_prev", "files"})


def _select_parquet(source: str, schema: pa.Schema) -> str:
    """The schema's columns from read_parquet(source): a glob or a list, as SQL text."""
    cols = ", ".join(f.name for f in schema)
    read = f"read_parquet({source}, union_by_name = true, hive_partitioning = false)"
    if ADDED_COLUMNS & set(schema.names):  # every file may predate them: fill them in by name
        return f"SELECT {cols} FROM (SELECT * FROM {read} UNION ALL BY NAME {empty_select(schema)})"
    return f"SELECT {cols} FROM {read}"


def parquet_sql(root: Path, pattern: str, schema: pa.Schema) -> str:
    """SQL for the Parquet files matching `pattern` under `root`; typed even when there are none."""
    if not any(root.glob(pattern)):
        return empty_select(schema)
    return _select_parquet(sql_literal(str(root / pattern)), schema)


def _read(root: Path, name: str) -> str:
    return parquet_sql(root, *DATASETS[name])


def committed_batch_ids(paths: Paths) -> set[str]:
    """The batches with a ledger record (the commit point): every data file is named after its batch."""
    return {p.stem for p in paths.batches_dir.glob("*.parquet")} if paths.batches_dir.exists() else set()


def _derive_alerts_visible(paths: Paths) -> str:
    """Derive-time alerts are visible once their chain link exists (all of them before the chain is adopted)."""
    if not chain.chain_active(paths):
        return "source = 'derive'"
    ids = sorted(chain.linked_ids(paths))
    return f"source = 'derive' AND batch_id IN ({', '.join(sql_literal(i) for i in ids)})" if ids else "false"


def dataset_sql(paths: Paths, name: str) -> str:
    """SQL for one stored dataset (events, quarantine, alerts, batches); typed even when empty.

    Only committed data is visible: rows of a batch without a ledger record
    (a crash mid-commit) are not part of the warehouse.
    """
    root = paths.warehouse.resolve()
    sql = _read(root, name)
    if name == "batches":
        return sql
    committed = f"SELECT batch_id FROM ({_read(root, 'batches')})"
    if name == "alerts":
        return f"SELECT * FROM ({sql}) WHERE ({_derive_alerts_visible(paths)}) OR batch_id IN ({committed})"
    return f"SELECT * FROM ({sql}) WHERE batch_id IN ({committed})"


def snapshot_sql(paths: Paths, name: str) -> str:
    """SQL for the committed files of a dataset (events or quarantine) as they are listed now.

    The same rows as `dataset_sql`, found by file instead of by row: every data file is
    named after its batch (`<dataset>/site=<site>/<batch_id>.parquet`), so keeping the
    files whose batch is in the ledger spares the per-row ledger lookup, which costs a
    third of a scan of the event log. Files that arrive later are not seen: a consistent
    snapshot for one derivation; views that must follow the log use `dataset_sql`.
    """
    pattern, schema = DATASETS[name]
    committed = committed_batch_ids(paths)
    files = sorted(str(p) for p in paths.warehouse.resolve().glob(pattern) if p.stem in committed)
    if not files:
        return empty_select(schema)
    return _select_parquet("[" + ", ".join(sql_literal(f) for f in files) + "]", schema)


def events_sql(paths: Paths, as_of: datetime | None = None) -> str:
    """The accepted events, as of an ingestion cutoff (inclusive) when given."""
    base = dataset_sql(paths, "events")
    if as_of is None:
        return base
    return f"SELECT * FROM ({base}) WHERE ingested_at <= {sql_literal(as_of.isoformat())}::TIMESTAMPTZ"


def configure(con: duckdb.DuckDBPyConnection, paths: Paths) -> None:
    tmp = paths.warehouse / ".duckdb_tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    con.execute(f"SET memory_limit = {sql_literal(MEMORY_LIMIT)}")
    con.execute(f"SET temp_directory = {sql_literal(str(tmp))}")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET TimeZone = 'UTC'")


def refresh_views(con: duckdb.DuckDBPyConnection, paths: Paths) -> None:
    for name in DATASETS:
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {dataset_sql(paths, name)}")


def connect(paths: Paths, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open trial.duckdb. Writers must hold writer_lock; views are refreshed on write."""
    paths.warehouse.mkdir(parents=True, exist_ok=True)
    if read_only and Path(paths.db_path).exists():
        con = duckdb.connect(str(paths.db_path), read_only=True)
        configure(con, paths)
        return con
    con = duckdb.connect(str(paths.db_path), config={"storage_compatibility_version": STORAGE_COMPATIBILITY})
    configure(con, paths)
    refresh_views(con, paths)
    return con


def fingerprint(paths: Paths, as_of: datetime | None = None) -> str:
    """SHA-256 fingerprint of the event log (as of a cutoff): ids and content of every event."""
    sql = (
        "SELECT sha256(coalesce(string_agg(event_id || ':' || content_hash, ',' ORDER BY event_id), '')) "
        f"FROM ({events_sql(paths, as_of)})"
    )
    row = duckdb.connect().execute(sql).fetchone()
    return str(row[0]) if row else ""
