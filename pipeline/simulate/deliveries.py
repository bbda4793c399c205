"""Split each site's events into delivery files, and write them (with any faulty rows slipped in).

A site's rows are already sorted by delivery instant (events.py); they are cut
into `files_per_site` files of equal row count, each named after the day it was
delivered (the day after its last recording, `2026-02-01_delivery.csv.gz`), the
formats cycling through `options.formats` across all sites' files. Some sites
have quirks a real export has: NL02 writes JSONL numbers as strings, NL03
exports CSV from a spreadsheet (BOM, CRLF line ends). Both are valid DTS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.simulate.options import SimulationOptions
from pipeline.simulate.writers import write_table


@dataclass
class Insert:
    """A faulty row to slip into a delivery before clean row `position` (0 = first, len = after the last)."""

    position: int
    row: dict[str, Any]
    rule: str


@dataclass
class Delivery:
    site: int
    site_id: str
    name: str
    fmt: str
    table: pa.Table  # clean rows, with the helper columns of events.py
    bom: bool = False
    eol: str = "\n"
    numbers_as_text: bool = False
    inserts: list[Insert] = field(default_factory=list)
    extra_columns: dict[str, str] = field(default_factory=dict)  # an unknown column and its value on every row

    @property
    def relpath(self) -> Path:
        return Path(self.site_id) / self.name


@dataclass(frozen=True)
class Written:
    path: Path
    fault_rows: list[tuple[str, str | None, int]]  # (rule, event_id, 1-based data row)


def _delivery_date(key_s: int) -> datetime:
    return datetime.fromtimestamp(key_s, tz=UTC).replace(hour=0, minute=0, second=0) + timedelta(days=1)


def plan_deliveries(table: pa.Table, options: SimulationOptions) -> list[Delivery]:
    """Cut the sorted event table into delivery files per site (sites without patients deliver nothing)."""
    sites = table.column("_site").to_numpy()
    keys = table.column("_key").to_numpy()
    out: list[Delivery] = []
    counter = 0
    for s, site_id in enumerate(options.site_ids):
        lo, hi = np.searchsorted(sites, [s, s + 1])
        if hi == lo:
            continue
        cuts = np.unique(np.linspace(lo, hi, options.files_per_site + 1).astype(np.int64))
        previous: datetime | None = None
        for a, b in pairwise(cuts):
            date = _delivery_date(int(keys[b - 1]))
            if previous is not None and date <= previous:
                date = previous + timedelta(days=1)
            previous = date
            fmt = options.formats[counter % len(options.formats)]
            counter += 1
            out.append(Delivery(
                site=s, site_id=site_id, name=f"{date:%Y-%m-%d}_delivery.{fmt}", fmt=fmt,
                table=table.slice(a, b - a),
                bom=s == 2 and fmt.startswith("csv"), eol="\r\n" if s == 2 else "\n",
                numbers_as_text=s == 1,
            ))
    return out


def clean_columns(table: pa.Table) -> pa.Table:
    """The table without the simulator's helper columns (names starting with `_`)."""
    return table.drop_columns([n for n in table.column_names if n.startswith("_")])


def _unify(column: pa.ChunkedArray, values: list[Any]) -> tuple[pa.ChunkedArray | pa.Array, pa.Array]:
    """The clean column and the faulty values in one type; text when a faulty value does not fit."""
    try:
        return column, pa.array(values, column.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        def text(v: Any) -> str | None:
            return None if v is None else ("true" if v else "false") if isinstance(v, bool) else str(v)
        return pc.cast(column, pa.string()), pa.array([text(v) for v in values], pa.string())


def merged_table(d: Delivery) -> tuple[pa.Table, list[int]]:
    """Clean rows with the inserts slipped in; also the 1-based row number of each insert.

    A column that receives a value of another type (say `seven` for an integer) is written as text.
    """
    table = clean_columns(d.table)
    rows: list[int] = []
    if d.inserts:
        n_clean = table.num_rows
        columns, faulty = {}, {}
        for name in table.column_names:
            columns[name], faulty[name] = _unify(table.column(name), [i.row.get(name) for i in d.inserts])
        base = pa.table(columns)
        merged = pa.concat_tables([base, pa.table(faulty, schema=base.schema)])
        # clean row i sorts at 2i + 1, an insert before clean row p at 2p
        rank = np.concatenate([2 * np.arange(n_clean) + 1, 2 * np.asarray([i.position for i in d.inserts])])
        order = np.argsort(rank, kind="stable")
        table = merged.take(pa.array(order))
        where = np.empty(order.size, np.int64)
        where[order] = np.arange(order.size)
        rows = (where[n_clean:] + 1).tolist()
    for name, value in d.extra_columns.items():
        table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
    return table, rows


def write_delivery(d: Delivery, landing: Path) -> Written:
    table, rows = merged_table(d)
    path = landing / d.relpath
    write_table(table, path, d.fmt, bom=d.bom, eol=d.eol, numbers_as_text=d.numbers_as_text)
    return Written(path, [(i.rule, i.row.get("event_id"), r) for i, r in zip(d.inserts, rows, strict=True)])
