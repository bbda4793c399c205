"""Stream a delivered file as chunks of text columns, never loading it whole.

Every value is kept as the text the site sent (None for an empty cell or a
missing key), so that typing and validation see exactly what was delivered and
the quarantine can keep the original record. Each chunk carries `_row` (the
record number: CSV data row after the header, JSONL line, Parquet record) and
`_raw` (the original record as JSON text; for JSONL the line itself).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.schema import FIELD_BY_NAME, REQUIRED_ENVELOPE

CHUNK_ROWS = 50_000
MALFORMED = "_malformed"  # text column: why the record could not be read (row-level bad_type)


class FileRejected(Exception):
    """The whole file is rejected (DTS §5 file rules)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


@dataclass
class FileShape:
    """What the reader learnt about the file's columns."""

    columns: list[str] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)


def _open_text_bytes(path: Path, fmt: str) -> IO[bytes]:
    if fmt.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _check_columns(columns: list[str], shape: FileShape) -> None:
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise FileRejected("unreadable", f"the header names a column twice: {', '.join(dupes)}")
    missing = [c for c in REQUIRED_ENVELOPE if c not in columns]
    if missing:
        raise FileRejected("missing_column", f"required column(s) absent: {', '.join(missing)}")
    shape.columns = columns
    shape.unknown_columns = [c for c in columns if c not in FIELD_BY_NAME]


def _decode_error(exc: Exception) -> FileRejected:
    text = str(exc)
    if isinstance(exc, UnicodeDecodeError) or "UTF8" in text or "utf-8" in text.lower():
        return FileRejected("not_utf8", f"the file is not UTF-8 text ({text.splitlines()[0][:200]})")
    return FileRejected("unreadable", f"the file cannot be read: {text.splitlines()[0][:200] if text else exc!r}")


def _with_raw(table: pa.Table, first_row: int) -> pa.Table:
    """Add _row and _raw (the record as JSON, built by DuckDB for speed)."""
    con = duckdb.connect()
    con.register("chunk", table)
    raw = con.sql("SELECT to_json(chunk)::VARCHAR AS _raw FROM chunk").to_arrow_table().column(0)
    con.close()
    rows = pa.array(range(first_row, first_row + table.num_rows), pa.int64())
    return table.append_column("_row", rows).append_column("_raw", raw)


def _rechunk(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.Table]:
    pending: list[pa.RecordBatch] = []
    n = 0
    for b in batches:
        pending.append(b)
        n += b.num_rows
        if n >= CHUNK_ROWS:
            yield pa.Table.from_batches(pending)
            pending, n = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def read_csv(path: Path, fmt: str, shape: FileShape) -> Iterator[pa.Table]:
    try:
        with _open_text_bytes(path, fmt) as fh:
            first = fh.readline()
        header_line = first.decode("utf-8").lstrip("\ufeff")
    except (OSError, EOFError, zlib.error) as exc:
        raise FileRejected("unreadable", f"the file cannot be read: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise _decode_error(exc) from exc
    if not header_line.strip():
        raise FileRejected("missing_column", "the file has no header row")
    columns = [c.strip() for c in next(csv.reader(io.StringIO(header_line)))]
    _check_columns(columns, shape)
    source: Any = pa.input_stream(str(path), compression="gzip" if fmt.endswith(".gz") else None)
    try:
        # 1 MB blocks on one thread keep memory flat (8 MB blocks held ~300 MB of parsed blocks)
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(column_names=columns, skip_rows=1, block_size=1 << 20, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in columns},
                null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True,
            ),
        )
        row = 1
        for table in _rechunk(iter(reader)):
            yield _with_raw(table, row)
            row += table.num_rows
    except (pa.ArrowInvalid, OSError, EOFError, zlib.error) as exc:
        raise _decode_error(exc) from exc


def _json_text(value: Any, name: str) -> str | None:
    """The text of a JSON value as the DTS reads it (numbers as their text, JSON booleans only)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        f = FIELD_BY_NAME.get(name)
        # a boolean field must be a JSON boolean: keep the quotes so that "true" fails as bad_type
        return json.dumps(value) if f is not None and f.kind == "bool" else value
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False)


def read_jsonl(path: Path, fmt: str, shape: FileShape) -> Iterator[pa.Table]:
    seen_keys: dict[str, None] = {}
    rows: list[dict[str, Any]] = []
    try:
        with _open_text_bytes(path, fmt) as fh:
            for lineno, line_bytes in enumerate(fh, start=1):
                line = line_bytes.decode("utf-8").rstrip("\r\n")
                if lineno == 1:
                    line = line.lstrip("\ufeff")
                if not line.strip():
                    continue
                rec: dict[str, Any] = {"_row": lineno, "_raw": line}
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    obj, rec[MALFORMED] = None, f"line is not valid JSON ({exc.msg})"
                if obj is not None and not isinstance(obj, dict):
                    obj, rec[MALFORMED] = None, "line is not a JSON object"
                for k, v in (obj or {}).items():
                    seen_keys.setdefault(k, None)
                    rec[k] = _json_text(v, k)
                rows.append(rec)
                if len(rows) >= CHUNK_ROWS:
                    yield _jsonl_table(rows)
                    rows = []
    except (OSError, EOFError, zlib.error) as exc:
        raise FileRejected("unreadable", f"the file cannot be read: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise _decode_error(exc) from exc
    if rows:
        yield _jsonl_table(rows)
    # JSONL has no header: a required column is missing when no record has it
    _check_columns(list(seen_keys), shape)


def _jsonl_table(rows: list[dict[str, Any]]) -> pa.Table:
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    cols = {k: pa.array([r.get(k) for r in rows], pa.int64() if k == "_row" else pa.string()) for k in keys}
    return pa.table(cols)


def read_parquet(path: Path, shape: FileShape) -> Iterator[pa.Table]:
    try:
        pf = pq.ParquetFile(path)
        columns = list(pf.schema_arrow.names)
        _check_columns(columns, shape)
        row = 1
        for batch in pf.iter_batches(batch_size=CHUNK_ROWS):
            table = pa.Table.from_batches([batch])
            raw = _with_raw(table, row).column("_raw")
            text = pa.table({c: _as_text(table.column(c)) for c in columns})
            rows = pa.array(range(row, row + table.num_rows), pa.int64())
            yield text.append_column("_row", rows).append_column("_raw", raw)
            row += table.num_rows
    except FileRejected:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _decode_error(exc) from exc


def _as_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_timestamp(t) and t.tz is not None:
        # an instant: render with its offset so it parses as an instant
        col = col.cast(pa.timestamp("us", tz="UTC"))
        import pyarrow.compute as pc

        return pc.strftime(col, format="%Y-%m-%dT%H:%M:%S.%f+00:00")
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return col.cast(pa.string())
    return col.cast(pa.string())


def read_file(path: Path, fmt: str, shape: FileShape) -> Iterator[pa.Table]:
    """Chunks of text columns plus _row and _raw; raises FileRejected for a file-level failure."""
    if fmt in ("csv", "csv.gz"):
        return read_csv(path, fmt, shape)
    if fmt in ("jsonl", "jsonl.gz"):
        return read_jsonl(path, fmt, shape)
    if fmt == "parquet":
        return read_parquet(path, shape)
    raise FileRejected("unreadable", "unknown format: deliver .csv, .csv.gz, .jsonl, .jsonl.gz or .parquet")


__all__ = ["CHUNK_ROWS", "FileRejected", "FileShape", "read_file"]
