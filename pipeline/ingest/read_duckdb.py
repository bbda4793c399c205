"""Read a delivered file with DuckDB, as text, straight into the scratch table `_delivered`.

`_delivered` holds what `read.read_file` yields, in one table: `_row` (the record number: CSV data
row after the header, JSONL line, Parquet record), `_raw` (the delivered record as JSON text; for
JSONL the line itself), every DTS field as the text the site sent, and `_malformed`.

DuckDB reads CSV and JSON Lines only where it reads them exactly as the Python reader of `read.py`
(the reference, and the fallback for everything else) does. Checked by experiment on DuckDB 2.0:

* CSV (`read_csv`, all text, quoting and delimiter fixed, strict mode): DuckDB silently drops empty
  cells beyond the header's columns (`a,b` then `1,2,,`), where Arrow rejects the ragged row. So one
  column more than the header is declared, with null padding and no null string: a row of the right
  width has that column padded (NULL) and its last real cell not NULL (an empty cell reads as '').
  Null padding needs the single-threaded scanner when values hold line breaks; it is always used.
  In a CRLF file DuckDB takes a lone CR for a line end and swallows the next byte, so a file whose
  line ends are not all of the header's kind (LF, CRLF, or CR alone) goes to the Python reader.
  A header holding a quote goes there too (the Python reader splits it).
* JSON Lines (each line one VARCHAR column of `read_csv`, no quote, no delimiter): Python splits lines
  at LF only, DuckDB also at CR, so a file with a CR that is not part of CRLF goes to the Python reader;
  so does a file whose line count and bytes do not add up to its size (DuckDB reads a line of a lone
  NUL as an empty one). DuckDB's JSON accepts NaN, Infinity and trailing commas, which Python rejects,
  and has no nesting limit where Python has: such lines, and every line that needs a special rule
  (duplicate keys, surrogate escapes, arrays or nested objects, 1,000+ digit numbers, a non-integer
  number in a field, anything but `true`/`false` in a boolean field, the first line with its BOM),
  are read by the Python reader line by line (`read._jsonl_record`). DuckDB types the rest.
* Parquet stays with the Arrow reader (`read.read_parquet`): its text of typed columns (instants in
  UTC with `Z`, floats keeping `.0`, types DuckDB cannot read) is Arrow's; its chunks are inserted here.

Every DuckDB error sends the file to the Python reader, which gives today's verdict (`not_utf8`,
`unreadable`, ...): a fallback costs time, never a different verdict. A `.gz` is decompressed first
through the `max_file_bytes` bound (`file_too_large` as soon as it is passed) into a temporary file.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.ingest.read import (
    HEADER_BYTES,
    MALFORMED,
    FileRejected,
    FileShape,
    _check_columns,
    _jsonl_record,
    _jsonl_table,
    read_file,
    too_large_decompressed,
)
from pipeline.read_sql import sql_literal as lit
from pipeline.schema import ALL_COLUMNS, FIELD_BY_NAME

DELIVERED = "_delivered"
_LINES = "_delivered_lines"
BLOCK = 1 << 20
NULL_MARK = b"\x00\x01\x00"  # DuckDB's null string while reading CSV: a cell never holds it (checked)
_NULL_MARK_SQL = "chr(0) || chr(1) || chr(0)"
# a line DuckDB must not type: escapes of surrogates, constants and trailing commas Python rejects,
# arrays (nesting), numbers Python may refuse
_PYTHON_LINE = (r"\\u[dD][89a-fA-F]|NaN|Infinity|,[ \t\r\n]*[\]}]|\[|[0-9]{1000}"
                # a number in a value that is not an integer DuckDB reads exactly (Python writes 1e2 as 100.0)
                r"|:[ \t]*-?[0-9]+[.eE]|:[ \t]*-?[0-9]{19}")
_BOOLS = tuple(c for c in ALL_COLUMNS if FIELD_BY_NAME[c].kind == "bool")
ProgressFn = Callable[[int], None]


@dataclass
class Route:
    """How a file is read: by DuckDB (`duckdb`) or by the Python reader, and why."""

    reader: str  # "duckdb" or "python"
    reason: str = ""


@dataclass
class _Text:
    """What one pass over the delivered bytes learnt (for a .gz: after decompression)."""

    size: int = 0
    bom: bool = False
    newline: str = ""  # the first line's end: "\n", "\r\n", "\r", "" (none)
    cr: int = 0
    lf: int = 0
    crlf: int = 0
    marker: bool = False  # the text holds NULL_MARK
    quotes: int = 0
    ends_with_lf: bool = False


def _scan(path: Path, fmt: str, limit: int | None, copy_to: Path | None) -> _Text:
    """One pass over the text (decompressed through the bound, copied to `copy_to` for DuckDB)."""
    info, prev, first = _Text(), b"", b""
    opened: Any = gzip.open(path, "rb") if fmt.endswith(".gz") else open(path, "rb")  # noqa: SIM115
    with opened as fh, (open(copy_to, "wb") if copy_to else contextlib.nullcontext()) as out:
        while block := fh.read(BLOCK):
            info.size += len(block)
            if limit is not None and fmt.endswith(".gz") and info.size > limit:
                raise too_large_decompressed(limit)
            if out is not None:
                out.write(block)
            info.cr += block.count(b"\r")
            info.lf += block.count(b"\n")
            info.quotes += block.count(b'"')
            info.crlf += block.count(b"\r\n") + (prev[-1:] == b"\r" and block[:1] == b"\n")
            info.marker = info.marker or NULL_MARK in prev[-2:] + block
            if len(first) < 3 or not info.newline:
                first = (first + block)[: HEADER_BYTES + 2]
                info.bom = first.startswith(b"\xef\xbb\xbf")
                info.newline = _first_newline(first)
            prev = block
    info.ends_with_lf = prev.endswith(b"\n")
    return info


def _first_newline(head: bytes) -> str:
    i, j = head.find(b"\n"), head.find(b"\r")
    if j >= 0 and (i < 0 or j < i):
        return "" if j + 1 == len(head) else "\r\n" if head[j + 1: j + 2] == b"\n" else "\r"
    return "\n" if i >= 0 else ""


def csv_route(info: _Text, header: str) -> Route:
    """Whether DuckDB reads a CSV exactly as the Arrow reader does (see the module docstring)."""
    consistent = {"\n": info.cr == 0, "\r\n": info.cr == info.crlf, "\r": info.lf == 0}.get(info.newline, False)
    if not consistent:
        return Route("python", "line ends not all of one kind (or none)")
    if '"' in header:
        return Route("python", "a quoted header")
    if info.marker:
        return Route("python", "the text holds DuckDB's null marker")
    if info.quotes % 2:
        return Route("python", "an odd number of quotes (DuckDB drops a record left open at the end)")
    return Route("duckdb")


def jsonl_route(info: _Text) -> Route:
    if info.cr and not info.cr == info.crlf == info.lf:
        return Route("python", "a CR that is not a CRLF line end (Python splits lines at LF only)")
    return Route("duckdb")


@contextlib.contextmanager
def _progress(con: duckdb.DuckDBPyConnection, size: int, on_bytes: ProgressFn | None) -> Iterator[None]:
    """Report `size * DuckDB's query progress` to `on_bytes` from a thread while a statement runs."""
    if on_bytes is None:
        yield
        return
    con.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false; SET progress_bar_time = 0")
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.25):
            done = con.query_progress()
            if done >= 0:
                on_bytes(int(size * min(done, 100.0) / 100))

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _create(con: duckdb.DuckDBPyConnection) -> None:
    cols = ", ".join(f"{c} VARCHAR" for c in ALL_COLUMNS)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {DELIVERED} (_row BIGINT, _raw VARCHAR, {cols}, {MALFORMED} VARCHAR)")


def drop(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"DROP TABLE IF EXISTS {DELIVERED}")
    con.execute(f"DROP TABLE IF EXISTS {_LINES}")
    con.execute(f"DROP TABLE IF EXISTS {_LINES}_n")


def _read_csv_sql(path: Path, n_columns: int, **options: str) -> str:
    spec = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(n_columns))
    opts = "".join(f", {k}={v}" for k, v in options.items())
    return f"read_csv({lit(str(path))}, header=false, auto_detect=false, strict_mode=true, columns={{{spec}}}{opts})"


def _csv_into(con: duckdb.DuckDBPyConnection, text: Path, columns: list[str]) -> bool:
    """The CSV read by DuckDB into `_delivered`; False (nothing inserted) if DuckDB may have read it otherwise.

    That is: a row of more or fewer cells than the header, or a value holding a quote. DuckDB reads a quote
    inside an unquoted cell (`ab"c`) as text, as Arrow does, but then silently drops a last record left
    open by a quote that the even count of quotes hides; without quotes in values every quote is one
    of a pair, and an odd count (sent to Python before) is the only way to leave a record open.
    """
    n = len(columns)
    src = _read_csv_sql(text, n + 1, skip="1", delim="','", quote="'\"'", escape="'\"'", null_padding="true",
                        nullstr=_NULL_MARK_SQL, parallel="false", compression="'none'")
    raw = ", ".join(f"{lit(c)}, nullif(c{i}, '')" for i, c in enumerate(columns))
    at = {c: i for i, c in enumerate(columns)}
    text_cols = "".join(f"nullif(c{at[c]}, '') AS {c}, " if c in at else f"CAST(NULL AS VARCHAR) AS {c}, "
                        for c in ALL_COLUMNS)
    cells = ", ".join(f"c{i}" for i in range(n))
    # the table itself becomes `_delivered` (one copy of a large file, not two)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_LINES} AS SELECT row_number() OVER () AS _row, "
                f"json_object({raw})::VARCHAR AS _raw, {text_cols}CAST(NULL AS VARCHAR) AS {MALFORMED}, "
                f"(c{n} IS NOT NULL OR c{n - 1} IS NULL OR contains(concat({cells}), '\"')) AS _ragged "
                f"FROM {src}")
    (ragged,) = con.execute(f"SELECT coalesce(bool_or(_ragged), false) FROM {_LINES}").fetchall()[0]
    if ragged:
        con.execute(f"DROP TABLE {_LINES}")
        return False
    con.execute(f"DROP TABLE {DELIVERED}")
    con.execute(f"ALTER TABLE {_LINES} RENAME TO {DELIVERED}")
    return True


def _paths(columns: tuple[str, ...]) -> str:
    return "[" + ", ".join(lit(f"$.{c}") for c in columns) + "]"


def _jsonl_into(con: duckdb.DuckDBPyConnection, text: Path, info: _Text, shape: FileShape) -> bool:
    """The JSONL lines into `_delivered`: typed by DuckDB, or one by one in Python; False if not exact.

    One parse per line gives every field's text (`json_extract_string`), the keys and the JSON types of
    the boolean fields; the prefilter `_PYTHON_LINE` already sent away every other value DuckDB and
    Python read differently (non-integer numbers, arrays, nested objects, constants).
    """
    src = _read_csv_sql(text, 1, delim="chr(0)", quote="''", escape="''", compression="'none'")
    simple = (f"_row > 1 AND NOT regexp_matches(line, {lit(_PYTHON_LINE)}) "
              f"AND length(line) - length(replace(line, '{{', '')) = 1 AND json_valid(line)")
    bools = " AND ".join(f"coalesce(json_type(_b[{i + 1}]) IN ('NULL', 'BOOLEAN'), true)" for i in range(len(_BOOLS)))
    # numbered first: a statement after the (streaming, order-keeping) row_number runs on one thread
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_LINES}_n AS SELECT row_number() OVER () AS _row, c0 AS line "
                f"FROM {src}")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {_LINES} AS
        SELECT _row, line, _k, _v,
               coalesce(_k IS NOT NULL AND len(list_distinct(_k)) = len(_k) AND {bools}, false) AS _fast
        FROM (SELECT _row, line, _v, _b, CASE WHEN _o THEN json_keys(line) END AS _k
              FROM (SELECT _row, line, CASE WHEN {simple} THEN json_type(line) = 'OBJECT' END AS _o,
                           CASE WHEN _o THEN json_extract_string(line, {_paths(ALL_COLUMNS)}) END AS _v,
                           CASE WHEN _o THEN json_extract(line, {_paths(_BOOLS)}) END AS _b
                    FROM {_LINES}_n))""")
    con.execute(f"DROP TABLE {_LINES}_n")
    n, chars = con.execute(f"SELECT count(*), coalesce(sum(strlen(line)), 0) FROM {_LINES}").fetchall()[0]
    body = info.size - 3 * info.bom
    ends = info.lf  # every line end holds one LF (a CRLF file: one CR too)
    if body != chars + ends * (2 if info.cr else 1) or n != ends + (0 if info.ends_with_lf or not body else 1):
        con.execute(f"DROP TABLE {_LINES}")
        return False
    values = ", ".join(f"nullif(_v[{i + 1}], '') AS {c}" for i, c in enumerate(ALL_COLUMNS))
    con.execute(f"INSERT INTO {DELIVERED} (_row, _raw, {', '.join(ALL_COLUMNS)}) SELECT _row, line, {values} "
                f"FROM {_LINES} WHERE _fast")
    keys: dict[str, tuple[int, int]] = {}
    for key, row, pos in con.execute(
            f"SELECT k, min(_row), arg_min(i, _row) FROM (SELECT _row, unnest(_k) AS k, "
            f"generate_subscripts(_k, 1) AS i FROM {_LINES} WHERE _fast) GROUP BY k").fetchall():
        keys[key] = (row, pos)
    _python_lines(con, keys)
    con.execute(f"DROP TABLE {_LINES}")
    _check_columns(sorted(keys, key=keys.__getitem__), shape)
    return True


def _python_lines(con: duckdb.DuckDBPyConnection, keys: dict[str, tuple[int, int]]) -> None:
    """The lines DuckDB did not type, read by the Python reader's line rules, into `_delivered`."""
    last = 0
    while batch := con.execute(f"SELECT _row, line FROM {_LINES} WHERE NOT _fast AND line IS NOT NULL "
                               f"AND _row > {last} ORDER BY _row LIMIT 10000").fetchall():
        last = batch[-1][0]
        rows = []
        for lineno, line in batch:
            if lineno == 1:
                line = line.lstrip("\ufeff")
            if not line.strip():
                continue
            rec, line_keys = _jsonl_record(lineno, line)
            for pos, k in enumerate(line_keys, start=1):
                if k not in keys or keys[k] > (lineno, pos):
                    keys[k] = (lineno, pos)
            rows.append(rec)
        if rows:
            _insert_arrow(con, _jsonl_table(rows))


def _insert_arrow(con: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
    con.register("_delivered_chunk", table)
    try:
        con.execute(f"INSERT INTO {DELIVERED} BY NAME SELECT * FROM _delivered_chunk")
    finally:
        con.unregister("_delivered_chunk")


def _temp_file(con: duckdb.DuckDBPyConnection, suffix: str) -> Path:
    (where,) = con.execute("SELECT current_setting('temp_directory')").fetchall()[0]
    # an in-memory database's default is `.tmp` under the working directory: the system's temp folder then
    folder = Path(where) if where and Path(where).is_absolute() else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(suffix=suffix, prefix="delivered-", dir=folder)
    os.close(fd)
    return Path(name)


def _header(text: Path) -> str:
    with open(text, "rb") as fh:
        return fh.readline(HEADER_BYTES).decode("utf-8", "replace")


def read_into(con: duckdb.DuckDBPyConnection, path: Path, fmt: str, shape: FileShape, limit: int | None = None,
              on_bytes: ProgressFn | None = None) -> Route:
    """Fill `_delivered` with the file's records; raises FileRejected for a file-level failure.

    Returns how the file was read. `shape` gets the columns; `on_bytes` the bytes read so far.
    """
    _create(con)
    size = path.stat().st_size
    route = Route("python", "Parquet: Arrow's text of typed columns")
    if fmt != "parquet":
        route = _read_text(con, path, fmt, shape, limit, on_bytes, size)
    _record(shape, route)
    if route.reader == "python":
        for chunk in read_file(path, fmt, shape, limit):
            _insert_arrow(con, chunk)
            if on_bytes is not None:
                on_bytes(shape.bytes_read)
    shape.bytes_read = size
    if on_bytes is not None:
        on_bytes(size)
    return route


def _record(shape: FileShape, route: Route) -> Route:
    shape.reader = route.reader
    return route


def _read_text(con: duckdb.DuckDBPyConnection, path: Path, fmt: str, shape: FileShape, limit: int | None,
               on_bytes: ProgressFn | None, size: int) -> Route:
    gz = fmt.endswith(".gz")
    copy = _temp_file(con, ".txt") if gz else None
    try:
        try:
            info = _scan(path, fmt, limit, copy)
        except FileRejected:
            raise
        except (OSError, EOFError, zlib.error):
            return Route("python", "the file cannot be scanned")
        text = copy or path
        with _progress(con, size, on_bytes):
            if fmt.startswith("csv"):
                return _read_csv_text(con, text, info, shape)
            route = jsonl_route(info)
            if route.reader == "duckdb" and not _jsonl_into(con, text, info, shape):
                route = Route("python", "DuckDB's lines do not add up to the file")
            return route
    except duckdb.Error as exc:
        _create(con)
        return Route("python", f"DuckDB cannot read it exactly: {str(exc).splitlines()[0][:120]}")
    finally:
        if copy is not None:
            copy.unlink(missing_ok=True)


def _read_csv_text(con: duckdb.DuckDBPyConnection, text: Path, info: _Text, shape: FileShape) -> Route:
    header_line = _header(text)
    route = csv_route(info, header_line)
    if route.reader == "python":
        return route
    columns = _csv_columns(text, shape)
    if columns is None:
        return Route("python", "the header cannot be read")
    if not _csv_into(con, text, columns):
        _create(con)
        return Route("python", "a row has more or fewer cells than the header, or a value holds a quote")
    return route


def _csv_columns(text: Path, shape: FileShape) -> list[str] | None:
    """The header's columns as the Arrow reader splits them (its checks raise the same FileRejected)."""
    import csv
    import io
    import re

    try:
        with open(text, "rb") as fh:
            first = fh.readline(HEADER_BYTES)
        line = re.split(r"\r\n|\r|\n", first.decode("utf-8").lstrip("\ufeff"), maxsplit=1)[0]
    except UnicodeDecodeError:
        return None
    if not line.strip():
        return None
    try:
        columns = [c.strip() for c in next(csv.reader(io.StringIO(line)))]
    except csv.Error:
        return None
    _check_columns(columns, shape)
    return columns


__all__ = ["DELIVERED", "Route", "csv_route", "drop", "jsonl_route", "read_into"]
