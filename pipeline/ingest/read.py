"""Stream a delivered file as chunks of text columns, never loading it whole.

Every value is kept as the text the site sent (None for an empty cell or a
missing key), so that typing and validation see exactly what was delivered and
the quarantine can keep the original record. Each chunk carries `_row` (the
record number: CSV data row after the header, JSONL line, Parquet record) and
`_raw` (the original record as JSON text; for JSONL the line itself).

A chunk holds only the DTS fields besides these internal columns: any other
column a site sends, whatever its name (`_row` included), is an unknown column
(kept in `_raw`, reported as `unknown_column`) and never reaches typing or
validation, so it cannot collide with an internal name.

One bad record never stops the file: a JSONL line that cannot be read for any reason (not JSON, nested
too deeply, an integer too long to convert, ...) is marked `_malformed` (row-level bad_type) and the
other lines are read. A JSON escape of a lone UTF-16 surrogate (backslash-u-d800) decodes to a code
point that is not a character and cannot be stored as UTF-8: such a line is malformed too, and its
`_raw` keeps that escape as plain text (its backslash doubled), the only change ever made to a line.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.read_sql import sql_literal as lit
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
    bytes_read: int = 0  # of the file on disk so far (for a .gz, compressed bytes): the progress display
    reader: str = ""  # "duckdb" or "python": which reader read it (pipeline.ingest.read_duckdb)


class _Counting(io.RawIOBase):
    """The file on disk, counting the bytes read from it into `shape.bytes_read`."""

    def __init__(self, path: Path, shape: FileShape) -> None:
        self.raw, self.shape = open(path, "rb", buffering=0), shape  # noqa: SIM115 (closed by close())

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self.raw.readinto(b) or 0
        self.shape.bytes_read += n
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


class _Bounded(io.RawIOBase):
    """A decompressing stream that stops as soon as more than `limit` bytes came out of it.

    A small `.gz` can expand to many gigabytes (a decompression bomb): `max_file_bytes` bounds the
    bytes read after decompression too, and the file is rejected whole as soon as it passes the bound.
    """

    def __init__(self, raw: IO[bytes], limit: int | None) -> None:
        self.raw, self.limit, self.done = raw, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self.raw.readinto(b)  # type: ignore[attr-defined]
        self.done += n or 0
        if self.limit is not None and self.done > self.limit:
            raise too_large_decompressed(self.limit)
        return int(n or 0)

    def close(self) -> None:
        self.raw.close()
        super().close()


def too_large_decompressed(limit: int) -> FileRejected:
    return FileRejected("file_too_large", f"decompressed, the file is larger than max_file_bytes = {limit} "
                                          f"(reading stopped there)")


def _open_text_bytes(path: Path, fmt: str, limit: int | None = None, shape: FileShape | None = None) -> IO[bytes]:
    disk: IO[bytes] = io.BufferedReader(_Counting(path, shape), 1 << 20) if shape else open(path, "rb")  # noqa: SIM115
    if fmt.endswith(".gz"):
        return io.BufferedReader(_Bounded(gzip.GzipFile(fileobj=disk, mode="rb"), limit), 1 << 20)  # type: ignore[arg-type]
    return disk


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


def _duckdb_json(table: pa.Table) -> pa.ChunkedArray:
    names = table.column_names
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("chunk", table.rename_columns([f"c{i}" for i in range(len(names))]))
        pairs = ", ".join(f"{lit(n)}, c{i}" for i, n in enumerate(names))
        return con.sql(f"SELECT json_object({pairs})::VARCHAR AS _raw FROM chunk").to_arrow_table().column(0)
    finally:
        con.close()


def _raw_json(table: pa.Table) -> pa.ChunkedArray:
    """Every record as JSON text under the delivered column names (built by DuckDB for speed).

    The columns are renamed to positions first and the names only appear as string literals, so no
    column name (`chunk`, `_row`, an empty header cell, ...) can be mistaken for another identifier.
    A Parquet column DuckDB cannot read (a half float, a 256-bit decimal, a timestamp beyond its range,
    ...) is kept as Arrow's text of it; one that Arrow cannot write as text either rejects the file.
    """
    try:
        return _duckdb_json(table)
    except duckdb.Error:
        pass
    columns = []
    for name, col in zip(table.column_names, table.columns, strict=True):
        try:
            _duckdb_json(pa.table({"c": col}))
        except duckdb.Error:
            try:
                col = col.cast(pa.string())
            except (pa.ArrowException, ValueError) as exc:
                raise FileRejected("unreadable", f"the file cannot be read: column {name!r} has a type that "
                                                 f"cannot be read ({col.type})") from exc
        columns.append(col)
    return _duckdb_json(pa.Table.from_arrays(columns, names=table.column_names))


def _with_raw(text: pa.Table, delivered: pa.Table, first_row: int) -> pa.Table:
    """The DTS columns of `text` plus _row and _raw (the whole `delivered` record, unknown columns too)."""
    raw = _raw_json(delivered)
    known = [c for c in text.column_names if c in FIELD_BY_NAME]
    rows = pa.array(range(first_row, first_row + text.num_rows), pa.int64())
    return text.select(known).append_column("_row", rows).append_column("_raw", raw)


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


HEADER_BYTES = 1 << 20  # a header row longer than this is not a header
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def read_csv(path: Path, fmt: str, shape: FileShape, limit: int | None = None) -> Iterator[pa.Table]:
    try:
        with _open_text_bytes(path, fmt) as fh:
            first = fh.readline(HEADER_BYTES)
        # the header ends at the first line break of any kind (a file may end its lines with CR alone)
        header_line = _LINE_BREAK.split(first.decode("utf-8").lstrip("\ufeff"), maxsplit=1)[0]
    except (OSError, EOFError, zlib.error) as exc:
        raise FileRejected("unreadable", f"the file cannot be read: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise _decode_error(exc) from exc
    if not header_line.strip():
        raise FileRejected("missing_column", "the file has no header row")
    try:
        columns = [c.strip() for c in next(csv.reader(io.StringIO(header_line)))]
    except csv.Error as exc:
        raise FileRejected("unreadable", f"the header row cannot be read as CSV: {exc}") from exc
    _check_columns(columns, shape)
    source: Any = pa.PythonFile(_open_text_bytes(path, fmt, limit, shape), mode="r")
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
            yield _with_raw(table, table, row)
            row += table.num_rows
    except FileRejected:
        raise
    except (pa.ArrowInvalid, OSError, EOFError, zlib.error, duckdb.Error) as exc:
        if limit is not None and "max_file_bytes" in str(exc):
            raise too_large_decompressed(limit) from exc
        raise _decode_error(exc) from exc
    finally:
        source.close()


_BOOL_FIELDS = frozenset(n for n, f in FIELD_BY_NAME.items() if f.kind == "bool")


def _json_text(value: Any, name: str) -> str | None:
    """The text of a JSON value as the DTS reads it (numbers as their text, JSON booleans only).

    An empty string is no value, as an empty CSV cell is.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if FIELD_BY_NAME[name].kind == "bool":
        # a boolean field must be a JSON boolean: "true" keeps its quotes and a number is marked as one,
        # so that neither reads as a boolean (bad_type); the safety alert reads the line itself
        if isinstance(value, int | float):
            return f"{json.dumps(value)} (a JSON number)"
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False)


# a JSON `\uXXXX` escape: a surrogate pair, or one code unit (group 1); an escaped backslash is skipped whole
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # an escape of a surrogate (maybe one of a pair)
_JSON_U_ESCAPE = re.compile(r"\\\\|\\u(?:[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|([0-9a-fA-F]{4}))")
LONE_SURROGATE = (r"line holds a lone UTF-16 surrogate escape (e.g. \ud800), which is not a character; "
                  r"the raw record keeps it as the text \\ud800")


def _escape_lone_surrogates(line: str) -> str:
    r"""The line with the backslash of every lone surrogate escape doubled (`\ud800` -> `\\ud800`)."""
    if not _SURROGATE_ESCAPE.search(line):
        return line

    def plain(m: re.Match[str]) -> str:
        unit = m.group(1)
        return "\\" + m.group(0) if unit is not None and 0xD800 <= int(unit, 16) <= 0xDFFF else m.group(0)

    return _JSON_U_ESCAPE.sub(plain, line)


def _fields_read_by_duckdb(text: str) -> tuple[dict[str, str | None], list[str]]:
    """(DTS fields as text, keys) of a JSON object that Python's parser gave up on.

    DuckDB's parser has no nesting limit and reads numbers of any length; ({}, []) if it cannot read
    the line as an object either. A field whose own value Python cannot read keeps DuckDB's JSON text.
    """
    con = duckdb.connect()
    try:
        row = con.execute("SELECT json_type(?::JSON), json_keys(?::JSON)", [text, text]).fetchone()
        if row is None or row[0] != "OBJECT":
            return {}, []
        keys: list[str] = list(row[1])
        fields: dict[str, str | None] = {}
        for k in dict.fromkeys(keys):
            if k not in FIELD_BY_NAME:
                continue
            got = con.execute("SELECT json_extract(?::JSON, ?)::VARCHAR", [text, f"$.{k}"]).fetchone()
            value_json = got[0] if got else None
            try:
                fields[k] = None if value_json is None else _json_text(json.loads(value_json), k)
            except Exception:  # the deep or long value itself: its JSON text
                fields[k] = value_json
        return fields, keys
    except Exception:  # DuckDB cannot read it either
        return {}, []
    finally:
        con.close()


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (Python's parser would accept them): the line is malformed."""
    raise ValueError(f"{name} is not a JSON value")


class _JsonObject(dict[str, Any]):
    """A JSON object as DuckDB reads it (the first of repeated keys wins), with the repeats kept aside."""

    repeats: list[tuple[str, Any]]


def _json_object(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject()
    obj.repeats = []
    for key, value in pairs:
        if key in obj:
            obj.repeats.append((key, value))
        else:
            obj[key] = value
    return obj


def _repeated_fields(obj: _JsonObject, fields: dict[str, Any]) -> str | None:
    """Why a line that names a DTS field twice is malformed (None if it does not).

    Which of two values the site meant is unknowable, so the line is rejected; a boolean field
    that says JSON `true` in any of its copies reads as true, so that a red-flag signal still alerts.
    """
    repeated = sorted({k for k, _ in obj.repeats if k in FIELD_BY_NAME})
    for key, value in obj.repeats:
        if key in FIELD_BY_NAME and FIELD_BY_NAME[key].kind == "bool" and value is True:
            fields[key] = "true"
    return f"field(s) given more than once in the line: {', '.join(repeated)}" if repeated else None


def _jsonl_record(lineno: int, line: str) -> tuple[dict[str, Any], Iterable[str]]:
    """(record, its keys) of one line: the DTS fields as text, `_row` and `_raw`.

    Whatever goes wrong reading the line (invalid JSON, nesting too deep for Python's parser, an integer
    of more than 4,300 digits, ...) makes it `_malformed`: it is rejected on its own. The fields of a
    JSON object that only Python could not read are still read (by DuckDB), so that the query list
    names its event_id and a red-flag signal in it still alerts.
    """
    text = _escape_lone_surrogates(line)
    rec: dict[str, Any] = {"_row": lineno, "_raw": text}
    try:
        obj = json.loads(text, object_pairs_hook=_json_object, parse_constant=_no_constant)
        if not isinstance(obj, dict):
            rec[MALFORMED] = "line is not a JSON object"
            return rec, []
        # any key that is not a DTS field is an unknown column, kept in _raw only
        fields = {k: v if v.__class__ is str and v and k not in _BOOL_FIELDS else _json_text(v, k)
                  for k, v in obj.items() if k in FIELD_BY_NAME}  # a plain string is its own text (fast path)
        keys: Iterable[str] = obj
        repeated = _repeated_fields(obj, fields) if isinstance(obj, _JsonObject) else None
        nested = sorted(k for k, v in obj.items() if k in FIELD_BY_NAME and isinstance(v, dict | list))
        if repeated:
            rec[MALFORMED] = repeated
        elif nested:
            rec[MALFORMED] = f"field(s) holding a JSON object or array, not a value: {', '.join(nested)}"
    except json.JSONDecodeError as exc:
        rec[MALFORMED] = f"line is not valid JSON ({exc.msg})"
        return rec, []
    except Exception as exc:  # whatever it is, one line that cannot be read must not stop the file
        rec[MALFORMED] = ("line is nested too deeply to be read" if isinstance(exc, RecursionError)
                          else f"line cannot be read ({type(exc).__name__})")
        fields, keys = _fields_read_by_duckdb(text)
        rec.update(fields)
        return rec, keys
    rec.update(fields)
    if text != line:
        rec[MALFORMED] = LONE_SURROGATE
    return rec, keys


def read_jsonl(path: Path, fmt: str, shape: FileShape, limit: int | None = None) -> Iterator[pa.Table]:
    seen_keys: dict[str, None] = {}
    rows: list[dict[str, Any]] = []
    try:
        with _open_text_bytes(path, fmt, limit, shape) as fh:
            for lineno, line_bytes in enumerate(fh, start=1):
                line = line_bytes.decode("utf-8").rstrip("\r\n")
                if lineno == 1:
                    line = line.lstrip("\ufeff")
                if not line.strip():
                    continue
                rec, keys = _jsonl_record(lineno, line)
                for k in keys:
                    seen_keys.setdefault(k, None)
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
        known = [c for c in columns if c in FIELD_BY_NAME]
        row, total, size = 1, max(pf.metadata.num_rows, 1), path.stat().st_size
        for batch in pf.iter_batches(batch_size=CHUNK_ROWS):
            table = pa.Table.from_batches([batch])
            text = pa.table({c: _as_text(table.column(c)) for c in known})  # the envelope is there
            row += table.num_rows
            shape.bytes_read = size * (row - 1) // total
            yield _with_raw(text, table, row - table.num_rows)
    except FileRejected:
        raise
    except (pa.ArrowException, OSError, ValueError, duckdb.Error) as exc:
        raise _decode_error(exc) from exc


def _as_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A Parquet column as the text a CSV would hold for it."""
    t = col.type
    if pa.types.is_timestamp(t) and t.tz is not None:
        # an instant: render it in UTC with `Z` so it parses as an instant (Arrow's %S includes the
        # fraction of the column's unit, e.g. "09:00:00.123456"; the unit is kept, so nothing is rounded)
        return pc.strftime(col.cast(pa.timestamp(t.unit, tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ")
    if pa.types.is_floating(t):
        # Arrow writes 5.0 as "5": keep the decimal point, as the text a site would send (5.0 is not an integer)
        text = col.cast(pa.string())
        whole_number = pc.match_substring_regex(text, r"^-?[0-9]+$")
        return pc.if_else(whole_number, pc.binary_join_element_wise(text, ".0", ""), text)
    # naive timestamps become "2026-01-09 09:00:00" (no offset: naive_timestamp), booleans "true"/"false";
    # an empty string is no value, as an empty CSV cell is
    text = col.cast(pa.string())
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def read_file(path: Path, fmt: str, shape: FileShape, limit: int | None = None) -> Iterator[pa.Table]:
    """Chunks of text columns plus _row and _raw; raises FileRejected for a file-level failure.

    `limit` (max_file_bytes) bounds the bytes read after decompression of a `.gz` file.
    """
    if fmt in ("csv", "csv.gz"):
        return read_csv(path, fmt, shape, limit)
    if fmt in ("jsonl", "jsonl.gz"):
        return read_jsonl(path, fmt, shape, limit)
    if fmt == "parquet":
        return read_parquet(path, shape)
    raise FileRejected("unreadable", "unknown format: deliver .csv, .csv.gz, .jsonl, .jsonl.gz or .parquet")


__all__ = ["CHUNK_ROWS", "FileRejected", "FileShape", "read_file"]
