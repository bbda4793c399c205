"""Write derived tables as CSV or Parquet, deterministically (sorted rows, stable bytes).

`--format xpt` and `--format dataset-json` write the CDISC ADaM datasets instead
(pipeline/derive/adam), from the same derivation and as-of cut.

`trialpipe export` also writes the stored tables events, quarantine and alerts
(interface.md, Warehouse), cut at the same as-of instant as the derivation.

CSV cells of text columns that a spreadsheet would run as a formula get a
leading apostrophe: the project's one rule, `pipeline.textsafe.neutralise_cell`,
applied inside DuckDB so that big tables stream to disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipeline.config import Paths, Study
from pipeline.derive.adam.write import ADAM_FORMATS, write_adam
from pipeline.derive.build import TABLE_KEYS
from pipeline.read_sql import sql_literal
from pipeline.store.warehouse import dataset_sql
from pipeline.textsafe import FORMULA_TRIGGERS

FORMATS = ("csv", "parquet")
#: what `trialpipe export --format` takes: the tables as CSV or Parquet, or the ADaM datasets
EXPORT_FORMATS = FORMATS + ADAM_FORMATS

#: the stored tables written besides the derived ones: the relation each is read from in the
#: derivation's connection (build._prepare's views, already cut at the as-of instant) and its sort key
LOG_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "events": ("accepted_events", ("site_id", "event_id")),
    "quarantine": ("quarantined_rows", ("batch_id", "source_row")),
    "alerts": ("export_alerts", ("alert_id",)),
}


def _char(c: str) -> str:
    return f"'{c}'" if c.isprintable() and c != "'" else f"chr({ord(c)})"


def neutralise_sql(column: str) -> str:
    """SQL for `pipeline.textsafe.neutralise_cell` on a VARCHAR column (a trigger after leading spaces)."""
    triggers = ", ".join(_char(c) for c in FORMULA_TRIGGERS)
    col = f'"{column}"'
    return f"case when left(ltrim({col}, ' '), 1) in ({triggers}) then '''' || {col} else {col} end"


def write_table(con: duckdb.DuckDBPyConnection, table: str, path: Path, fmt: str,
                keys: Iterable[str] = ()) -> Path:
    """Write one table sorted by its key (then every other column) to `path`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
    columns = [(str(r[0]), str(r[1])) for r in con.sql(f"describe {table}").fetchall()]
    keys = list(keys)
    order = keys + [c for c, _ in columns if c not in keys]
    if fmt == "csv":
        select = ", ".join(f'{neutralise_sql(c)} as "{c}"' if t == "VARCHAR" else f'"{c}"' for c, t in columns)
        options = "format csv, header true"
    else:
        select = ", ".join(f'"{c}"' for c, _ in columns)
        options = "format parquet, compression zstd"
    order_by = ", ".join(f'"{c}" nulls first' for c in order)
    path.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"copy (select {select} from {table} order by {order_by}) to {sql_literal(str(path))} ({options})")
    return path


def _write_sorted(con: duckdb.DuckDBPyConnection, jobs: Sequence[tuple[str, Path, Sequence[str]]],
                  fmt: str) -> list[Path]:
    """write_table for each (relation, path, keys), with the sorted order kept on the way to the file."""
    ((previous,),) = con.sql("select current_setting('preserve_insertion_order')").fetchall()
    con.execute("set preserve_insertion_order = true")  # the sorted order must reach the file
    try:
        return [write_table(con, relation, path, fmt, keys) for relation, path, keys in jobs]
    finally:
        con.execute(f"set preserve_insertion_order = {bool(previous)}")


def write_tables(con: duckdb.DuckDBPyConnection, out: Path, fmt: str) -> list[Path]:
    """Write every derived table as <out>/<table>.<fmt>; returns the paths."""
    return _write_sorted(con, [(name, out / f"{name}.{fmt}", keys) for name, keys in TABLE_KEYS.items()], fmt)


def write_log_tables(con: duckdb.DuckDBPyConnection, paths: Paths, out: Path, fmt: str,
                     as_of: datetime | None = None) -> list[Path]:
    """Write events, quarantine and alerts as <out>/<table>.<fmt>; returns the paths.

    `con` holds a derivation (build_tables) whose accepted_events and quarantined_rows are
    already cut at `as_of` (ingested_at); alerts are cut by raised_at.
    """
    alerts = dataset_sql(paths, "alerts")
    if as_of is not None:
        alerts = f"select * from ({alerts}) where raised_at <= {sql_literal(as_of.isoformat())}::timestamptz"
    con.execute(f"create or replace temp view export_alerts as {alerts}")
    return _write_sorted(con, [(relation, out / f"{name}.{fmt}", keys)
                               for name, (relation, keys) in LOG_TABLES.items()], fmt)


def write_export(con: duckdb.DuckDBPyConnection, paths: Paths, study: Study, out: Path, fmt: str,
                 as_of: datetime | None = None) -> list[Path]:
    """What `trialpipe export` writes from a derivation in `con`: the tables, or the ADaM datasets."""
    if fmt in ADAM_FORMATS:
        return write_adam(con, study.study_id, out, fmt, created=datetime.now(UTC))
    return write_tables(con, out, fmt) + write_log_tables(con, paths, out, fmt, as_of)
