"""Type a chunk of delivered text (DuckDB SQL), keeping the text beside the value.

The output has, for every DTS field, the delivered text (`<field>`) and helper
columns the Great Expectations suites check: `<int>__num`, `<ts>__offset`,
`<ts>__epoch`, `_lag_days`, `_n_assessment`. `typed_sql` turns the same chunk
into the stored layout (pipeline.schema.EVENT_SCHEMA) with a content hash.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow as pa

from pipeline.read_sql import sql_literal as lit
from pipeline.schema import ALL_COLUMNS, FIELDS, TYPE_FIELDS

INT_RE = r"^[+-]?[0-9]+$"
BOOL_RE = r"^(?i:true|false|1|0)$"
ID_RE = r"^[A-Za-z0-9_-]{1,64}$"
_DATE_TIME = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?"
OFFSET_TS_RE = rf"^{_DATE_TIME}(?:Z|z|[+-]\d{{2}}:?\d{{2}})$"
NAIVE_TS_RE = r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?$"
ANY_TS_RE = rf"(?:{OFFSET_TS_RE})|(?:{NAIVE_TS_RE})"
PHI_RES = (
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",  # e-mail
    r"\+\d(?:[ -]?\d){7,14}",  # international phone: + and 8-15 digits, single spaces/dashes between
    r"\(\d{3}\) \d{3}-\d{4}",  # (ddd) ddd-dddd
    r"\d{3}-\d{3}-\d{4}",  # ddd-ddd-dddd
    r"\d{3}\.\d{3}\.\d{4}",  # ddd.ddd.dddd
    r"\d{10,}",  # 10+ consecutive digits
    r"\d{3}-\d{2}-\d{4}",  # US SSN
)


def _text_cols(present: set[str]) -> list[str]:
    return [f"{c}" if c in present else f"CAST(NULL AS VARCHAR) AS {c}" for c in ALL_COLUMNS]


def _ts(c: str) -> str:
    return f"CASE WHEN regexp_full_match({c}, {lit(OFFSET_TS_RE)}) THEN TRY_CAST({c} AS TIMESTAMPTZ) END"


def _int(c: str) -> str:
    return f"CASE WHEN regexp_full_match({c}, {lit(INT_RE)}) THEN TRY_CAST({c} AS DOUBLE) END"


def checks_sql(present: set[str]) -> str:
    """SELECT over `chunk` giving the frame the GX suites validate."""
    ints = [f.name for f in FIELDS if f.kind == "int"]
    helpers = [f"{_int(c)} AS {c}__num" for c in ints]
    for c in ("occurred_at", "recorded_at"):
        helpers.append(f"coalesce(regexp_full_match({c}, {lit(OFFSET_TS_RE)}), false) AS {c}__offset")
        helpers.append(f"epoch({_ts(c)}) AS {c}__epoch")
    helpers.append(f"(epoch({_ts('recorded_at')}) - epoch({_ts('occurred_at')})) / 86400.0 AS _lag_days")
    n_assess = " + ".join(f"({c} IS NOT NULL)::INTEGER" for c in TYPE_FIELDS["assessment"])
    helpers.append(f"{n_assess} AS _n_assessment")
    malformed = "_malformed" if "_malformed" in present else "CAST(NULL AS VARCHAR) AS _malformed"
    return f"SELECT _row, {', '.join(_text_cols(present))}, {malformed}, {', '.join(helpers)} FROM chunk"


def _typed(c: str) -> str:
    kind = next(f.kind for f in FIELDS if f.name == c)
    if kind == "int":
        return f"CAST(CASE WHEN {_int(c)} BETWEEN -2147483648 AND 2147483647 THEN {_int(c)} END AS INTEGER) AS {c}"
    if kind == "bool":
        return (f"CASE WHEN lower({c}) IN ('true', '1') THEN true "
                f"WHEN lower({c}) IN ('false', '0') THEN false END AS {c}")
    if kind == "timestamp":
        return f"{_ts(c)} AS {c}"
    return c


def content_hash_sql(alias: str = "") -> str:
    """SHA-256 of an event's parsed content: every DTS field, timestamps as instants."""
    p = f"{alias}." if alias else ""
    parts = []
    for f in FIELDS:
        col = f"{p}{f.name}"
        if f.kind == "timestamp":
            col = f"epoch_us({col})"
        parts.append(f"coalesce(CAST({col} AS VARCHAR), '\\N')")
    return f"sha256(concat_ws(chr(31), {', '.join(parts)}))"


def typed_sql(present: set[str]) -> str:
    """SELECT over `chunk` giving typed fields, _row and _raw."""
    inner = f"SELECT _row, _raw, {', '.join(_text_cols(present))} FROM chunk"
    typed = ", ".join(_typed(c) for c in ALL_COLUMNS)
    return f"SELECT _row, _raw, {typed} FROM ({inner})"


def prepare(chunk: pa.Table) -> tuple[pd.DataFrame, pa.Table]:
    """(frame for GX, typed Arrow table) for one chunk of delivered text."""
    present = set(chunk.column_names)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("chunk", chunk)
    frame = con.execute(checks_sql(present)).df()
    typed = con.sql(f"SELECT *, {content_hash_sql()} AS content_hash FROM ({typed_sql(present)})").to_arrow_table()
    con.close()
    return frame, typed
