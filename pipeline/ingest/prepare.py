"""Type a chunk of delivered text (DuckDB SQL), keeping the text beside the value.

The output has, for every DTS field, the delivered text (`<field>`) and helper
columns the Great Expectations suites check: `<int>__num`, `<typed>__untyped`,
`<ts>__offset`, `<ts>__epoch`, `_lag_days`, `_n_assessment`. `typed_sql` turns the same chunk
into the stored layout (pipeline.schema.EVENT_SCHEMA) with a content hash.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow as pa

from pipeline.read_sql import sql_literal as lit
from pipeline.schema import ALL_COLUMNS, FIELDS, TYPE_FIELDS

# The DTS value patterns, written once and matched as a whole value by both engines. DuckDB (RE2) gets them
# bare for regexp_full_match; Great Expectations applies a regex as a *search* (pandas str.contains), where `^…$`
# would let "5\n" through (`$` matches before a final line break), so its forms are anchored with \A…\Z.
# ASCII classes only: Python's \d and case folding also accept other digits and letters (e.g. "falſe").
INT_PATTERN = r"[+-]?[0-9]+"
BOOL_PATTERN = r"[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|1|0"
ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_DATE_TIME = rf"{_DATE}[T ][0-9]{{2}}:[0-9]{{2}}(?::[0-9]{{2}}(?:\.[0-9]{{1,9}})?)?"
# an offset of the world's clocks: -14:00 … +14:00 (a `+25:00` or `+01:60` would move the instant)
OFFSET_TS_PATTERN = rf"{_DATE_TIME}(?:Z|z|[+-](?:0[0-9]|1[0-4]):?[0-5][0-9])"
NAIVE_TS_PATTERN = rf"{_DATE}(?:[T ][0-9]{{2}}:[0-9]{{2}}(?::[0-9]{{2}}(?:\.[0-9]{{1,9}})?)?)?"
ANY_TS_PATTERN = rf"(?:{OFFSET_TS_PATTERN})|(?:{NAIVE_TS_PATTERN})"


def whole(pattern: str) -> str:
    """The Great Expectations (Python re, search) form of a pattern that must match the whole value."""
    return rf"\A(?:{pattern})\Z"


INT_RE = whole(INT_PATTERN)
BOOL_RE = whole(BOOL_PATTERN)
ID_RE = whole(ID_PATTERN)
OFFSET_TS_RE = whole(OFFSET_TS_PATTERN)
NAIVE_TS_RE = whole(NAIVE_TS_PATTERN)
ANY_TS_RE = whole(ANY_TS_PATTERN)
#: per typed kind, the pattern a delivered text must match to be read as that type (DuckDB form)
TYPED_PATTERNS = {"int": INT_PATTERN, "bool": BOOL_PATTERN, "timestamp": ANY_TS_PATTERN}
# An e-mail address, internationalised ones too (RFC 6531 / IDNA): jan@müller.de, ёжик@пример.рф, 用户@例子。中国,
# jan@xn--mller-kva.de. Beyond ASCII, a name character is any character except white space, punctuation and
# symbols of Latin-1 (U+0080-U+00BF, ×, ÷) and of the blocks below (spaces, General Punctuation, CJK and
# fullwidth punctuation, ...), so that letters, marks and digits of every script count. The domain is labels
# separated by a dot (also 。 ． ｡), the last one 2+ letters or a punycode `xn--` label: `pain@night`, `a@b` and
# `seen @ 3.30pm` are no address. One name character before the @ is enough (the check is a search), which also
# keeps Python's backtracking search linear on long comments. Spelt only with ASCII classes, \xHH escapes and
# literal characters (no \w, \d, \s, \b, \p{..} or \uXXXX), so that Python re and RE2 read it alike: pandas
# runs a GX regex on a string column with Arrow's RE2 or Python's re depending on pattern and data, and DuckDB
# has RE2 (tests/ingest/test_hostile_input.py checks all three).
_NOT_NAME = (r"\x00-\xBF\xD7\xF7"  # ASCII (its letters, digits and - are listed separately) and Latin-1 symbols
             "\u1680\u2000-\u206f\u3000-\u303f\ufe10-\ufe1f\ufe30-\ufe6f\ufeff"
             "\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65")  # literal characters, not regex escapes
_INTL = f"[^{_NOT_NAME}]"  # a name character beyond ASCII
_LABEL = rf"(?:[A-Za-z0-9-]|{_INTL})+"
_AT = "[@\ufe6b\uff20]"  # also the small and fullwidth @
_DOT = "[.\u3002\uff0e\uff61]"
EMAIL_PATTERN = (rf"(?:[A-Za-z0-9._%+-]|{_INTL}){_AT}{_LABEL}(?:{_DOT}{_LABEL})*"
                 rf"{_DOT}(?:xn--[A-Za-z0-9-]+|(?:[A-Za-z]|{_INTL}){{2,}})")
# a digit, the same in every engine (Python's \d takes every script's digits, RE2's only ASCII): ASCII,
# Arabic-Indic, Extended Arabic-Indic and fullwidth digits
_D = "[0-9\u0660-\u0669\u06f0-\u06f9\uff10-\uff19]"
PHI_RES = (
    EMAIL_PATTERN,
    rf"\+{_D}(?:[ -]?{_D}){{7,14}}",  # international phone: + and 8-15 digits, single spaces/dashes between
    rf"\({_D}{{3}}\) {_D}{{3}}-{_D}{{4}}",  # (ddd) ddd-dddd
    rf"{_D}{{3}}-{_D}{{3}}-{_D}{{4}}",  # ddd-ddd-dddd
    rf"{_D}{{3}}\.{_D}{{3}}\.{_D}{{4}}",  # ddd.ddd.dddd
    rf"{_D}{{10,}}",  # 10+ consecutive digits
    rf"{_D}{{3}}-{_D}{{2}}-{_D}{{4}}",  # US SSN
)


def _text_cols(present: set[str]) -> list[str]:
    return [f"{c}" if c in present else f"CAST(NULL AS VARCHAR) AS {c}" for c in ALL_COLUMNS]


def _ts(c: str) -> str:
    return f"CASE WHEN regexp_full_match({c}, {lit(OFFSET_TS_PATTERN)}) THEN TRY_CAST({c} AS TIMESTAMPTZ) END"


def _int(c: str) -> str:
    return f"CASE WHEN regexp_full_match({c}, {lit(INT_PATTERN)}) THEN TRY_CAST({c} AS DOUBLE) END"


def _untyped(c: str, kind: str) -> str:
    """`<field>__untyped`: the text when it is present but not of the field's type (else NULL).

    The suites' regex checks already reject such a text; this DuckDB-side twin (same rule, field and
    message) guarantees that a value typed as NULL can never be accepted if the two engines ever disagree.
    """
    return (f"CASE WHEN {c} IS NOT NULL AND NOT regexp_full_match({c}, {lit(TYPED_PATTERNS[kind])}) "
            f"THEN {c} END AS {c}__untyped")


def checks_sql(present: set[str]) -> str:
    """SELECT over `chunk` giving the frame the GX suites validate."""
    ints = [f.name for f in FIELDS if f.kind == "int"]
    helpers = [f"{_int(c)} AS {c}__num" for c in ints]
    helpers += [_untyped(f.name, f.kind) for f in FIELDS if f.kind in TYPED_PATTERNS]
    for c in ("occurred_at", "recorded_at"):
        helpers.append(f"coalesce(regexp_full_match({c}, {lit(OFFSET_TS_PATTERN)}), false) AS {c}__offset")
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
