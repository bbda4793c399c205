"""Write event rows in the five DTS delivery formats (§2).

CSV: UTF-8, header row, RFC 4180 quoting, empty cell = null, booleans
`true`/`false`. JSONL: one JSON object per line, every column present (null
where empty). Parquet: one column per field. `.gz` variants are the gzip of the
CSV/JSONL bytes (header without file name or time, so the bytes are
reproducible).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

FORMATS = ("csv", "csv.gz", "jsonl", "jsonl.gz", "parquet")
Row = Mapping[str, Any]
GZIP_LEVEL = 1  # fast; the bytes are still reproducible


def format_of(path: Path) -> str:
    """The DTS format of a file from its name (`x.csv.gz` -> `csv.gz`)."""
    name = Path(path).name
    for fmt in sorted(FORMATS, key=len, reverse=True):
        if name.endswith("." + fmt):
            return fmt
    raise ValueError(f"{name}: not one of the DTS formats {FORMATS}")


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


def _gzip_file(src: Path, dest: Path) -> None:
    with open(src, "rb") as fin, open(dest, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0) as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)


def csv_bytes(table: pa.Table, *, header: bool = True, eol: str = "\n") -> bytes:
    """The table as CSV (strings quoted, header names and other values bare, nulls as empty cells)."""
    buf = io.BytesIO()
    options = pacsv.WriteOptions(include_header=header, eol=eol, quoting_header="none")
    pacsv.write_csv(table, buf, options)
    return buf.getvalue()


def _numbers_as_text(table: pa.Table) -> pa.Table:
    for i, field in enumerate(table.schema):
        if pa.types.is_integer(field.type) or pa.types.is_floating(field.type):
            table = table.set_column(i, field.name, pc.cast(table.column(i), pa.string()))
    return table


def write_table(table: pa.Table, path: Path, fmt: str | None = None, *, bom: bool = False, eol: str = "\n",
                numbers_as_text: bool = False) -> None:
    """Write an Arrow table of events to `path` in `fmt` (default: from the file name).

    `bom` / `eol` shape CSV (a spreadsheet export starts with a BOM and ends lines with CRLF);
    `numbers_as_text` writes JSONL numbers as strings with the same text (DTS §5 allows both).
    """
    path = Path(path)
    fmt = fmt or format_of(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(table, path, compression="snappy")
    elif fmt in ("csv", "csv.gz"):
        data = (b"\xef\xbb\xbf" if bom else b"") + csv_bytes(table, eol=eol)
        path.write_bytes(gzip_bytes(data) if fmt == "csv.gz" else data)
    elif fmt in ("jsonl", "jsonl.gz"):
        _write_jsonl(_numbers_as_text(table) if numbers_as_text else table, path, gz=fmt == "jsonl.gz")
    else:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


def _write_jsonl(table: pa.Table, path: Path, *, gz: bool) -> None:
    if table.num_columns == 0:
        path.write_bytes(gzip_bytes(b"") if gz else b"")
        return
    fd, tmp_name = tempfile.mkstemp(suffix=".json", dir=path.parent, prefix=".")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        con = duckdb.connect(config={"threads": 1})
        try:
            con.register("rows", table)
            con.execute(f"COPY rows TO '{tmp.as_posix()}' (FORMAT json)")
        finally:
            con.close()
        if gz:
            _gzip_file(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _column(values: list[Any]) -> pa.Array:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.array(values, pa.bool_())
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.array(values, pa.int64())
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pa.array(values, pa.float64())
    return pa.array([_text(v) for v in values], pa.string())


def rows_to_table(rows: Sequence[Row]) -> pa.Table:
    """A table with the union of the rows' keys (in order of first appearance); absent keys are null.

    A column whose values are all booleans, all integers or all numbers keeps that type;
    any other mix is written as text (so fixtures can hold deliberately bad values).
    """
    names = list(dict.fromkeys(k for row in rows for k in row))
    return pa.table({name: _column([row.get(name) for row in rows]) for name in names})


def write_events(rows: Sequence[Row], path: Path, fmt: str | None = None) -> Path:
    """Write dict rows (str / int / float / bool / None values) as one DTS delivery file; returns `path`.

    JSONL keeps each value's own JSON type; CSV and Parquet go through `rows_to_table`.
    """
    path = Path(path)
    fmt = fmt or format_of(path)
    if fmt in ("jsonl", "jsonl.gz"):
        path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(json.dumps(dict(row), ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
        path.write_bytes(gzip_bytes(data) if fmt == "jsonl.gz" else data)
    else:
        write_table(rows_to_table(rows), path, fmt)
    return path
