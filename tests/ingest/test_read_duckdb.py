"""DuckDB reads CSV and JSON Lines exactly as the Python reader does, or hands the file to it.

The Python reader (pipeline.ingest.read) is the reference: on every file the DuckDB path reads, the
records (`_row`, `_raw`, every field's text, `_malformed`), the columns and the verdict are the same.
Each routing rule has a test naming the DuckDB behaviour that makes it necessary.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipeline.ingest import read as python_reader
from pipeline.ingest.read import FileRejected, FileShape, read_file
from pipeline.ingest.read_duckdb import DELIVERED, Route, read_into
from pipeline.schema import ALL_COLUMNS
from pipeline.simulate.writers import write_events
from tests.ingest.helpers import enrollment, symptom

COLUMNS = ["_row", "_raw", *ALL_COLUMNS, "_malformed"]
HEADER = "event_id,event_type,site_id,patient_id,occurred_at,recorded_at"
ENVELOPE = HEADER.split(",")


def _python(path: Path, fmt: str) -> tuple[Any, list[str] | None]:
    shape = FileShape()
    try:
        rows = [tuple(t.column(c)[i].as_py() if c in t.column_names else None for c in COLUMNS)
                for t in read_file(path, fmt, shape) for i in range(t.num_rows)]
    except FileRejected as exc:
        return exc.rule, None
    return sorted(rows, key=lambda r: r[0]), shape.columns


def _duckdb(path: Path, fmt: str) -> tuple[Any, list[str] | None, Route | None]:
    con = duckdb.connect()
    shape = FileShape()
    try:
        route = read_into(con, path, fmt, shape)
    except FileRejected as exc:
        return exc.rule, None, Route(shape.reader)
    rows = con.execute(f"SELECT {', '.join(COLUMNS)} FROM {DELIVERED} ORDER BY _row").fetchall()
    return rows, shape.columns, route


def _same(path: Path, fmt: str) -> Route | None:
    """Both readers on one file: identical records and columns; how DuckDB's side read it."""
    rows, columns = _python(path, fmt)
    got, got_columns, route = _duckdb(path, fmt)
    assert (got, got_columns) == (rows, columns), path.read_bytes()[:400]
    return route


def _write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


# --- which files DuckDB reads, which go to the Python reader ------------------------------------------------------


@pytest.mark.parametrize("name", ["a.csv", "a.csv.gz", "a.jsonl", "a.jsonl.gz"])
def test_a_clean_delivery_is_read_by_duckdb(tmp_path: Path, name: str) -> None:
    plain = tmp_path / ("plain." + name.split(".")[1])
    write_events([enrollment("E1"), symptom("S1", comment="a comma, a\nline break"), symptom("S2")], plain)
    path = _write(tmp_path, name, plain.read_bytes())
    route = _same(path, name.split(".", 1)[1])
    assert route is not None and route.reader == "duckdb"


def test_parquet_stays_with_the_arrow_reader(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    write_events([enrollment("E1"), symptom("S1")], path)
    route = _same(path, "parquet")
    assert route is not None and route.reader == "python" and "Arrow" in route.reason


CSV_ROUTES = {
    # DuckDB takes a lone CR in a CRLF file for a line end and swallows the byte after it
    "lone CR in a CRLF file": (f"{HEADER}\r\nE1,withdrawal,NL01,P1,a\r x,b\r\n", "python"),
    "LF then CR": (f"{HEADER}\nE1,withdrawal,NL01,P1,a,b\r", "python"),
    "CR alone throughout": (f"{HEADER}\rE1,withdrawal,NL01,P1,a,b\r", "duckdb"),
    "CRLF throughout, LF in a quoted value": (f'{HEADER}\r\nE1,withdrawal,NL01,P1,"a\nb",c\r\n', "duckdb"),
    "a quoted header": (f'"event_id",{HEADER[9:]}\nE1,withdrawal,NL01,P1,a,b\n', "python"),
    # DuckDB drops empty cells beyond the header's columns; Arrow rejects the ragged row
    "a trailing empty cell": (f"{HEADER}\nE1,withdrawal,NL01,P1,a,b,\n", "python"),
    "two trailing empty cells": (f"{HEADER}\nE1,withdrawal,NL01,P1,a,b,,\n", "python"),
    "a short row": (f"{HEADER}\nE1,withdrawal,NL01,P1,a\n", "python"),
    "blank lines": (f"{HEADER}\n\nE1,withdrawal,NL01,P1,a,b\n\n\nE2,withdrawal,NL01,P1,a,b\n", "duckdb"),
    "a BOM and no final line end": (f"\ufeff{HEADER}\nE1,withdrawal,NL01,P1,a,b", "duckdb"),
    "empty and quoted empty cells": (f'{HEADER},x\nE1,withdrawal,NL01,P1,,"",\n', "duckdb"),
    # DuckDB drops a last record left open by a quote: a quote in a value, or an odd count, goes to Python
    "a record left open": (f'{HEADER}\nE1,withdrawal,NL01,P1,a,b\n"E2,withdrawal,NL01,P1,a,b\n', "python"),
    "a record left open, quotes even": (f'{HEADER}\nE"1,withdrawal,NL01,P1,a,b\n"E2,withdrawal,NL01,P1,a,b\n',
                                        "python"),
    "an escaped quote": (f'{HEADER}\nE1,withdrawal,NL01,P1,"a ""b""",c\n', "python"),
}


@pytest.mark.parametrize("case", CSV_ROUTES, ids=list(CSV_ROUTES))
def test_a_csv_goes_to_duckdb_only_where_it_reads_it_exactly(tmp_path: Path, case: str) -> None:
    text, reader = CSV_ROUTES[case]
    route = _same(_write(tmp_path, "a.csv", text.encode()), "csv")
    assert route is not None and route.reader == reader, route


@pytest.mark.parametrize(("data", "rule"), [
    (f"{HEADER}\nE1,withdrawal,NL01,P1,\xff,b\n".encode("latin-1"), "not_utf8"),
    (f"{HEADER}\nE1,withdrawal,NL01,P1,a,b,\n".encode(), "unreadable"),
    (f"{HEADER}\nE1,withdrawal,NL01,P1,\"a\"b,c\n".encode(), None),
    (b"event_id,site_id\nE1,NL01\n", "missing_column"),
    (f"{HEADER},event_id\nE1,withdrawal,NL01,P1,a,b,c\n".encode(), "unreadable"),
    (b"", "missing_column"),
])
def test_a_csv_duckdb_cannot_read_gets_the_python_readers_verdict(tmp_path: Path, data: bytes,
                                                                   rule: str | None) -> None:
    path = _write(tmp_path, "a.csv", data)
    rows, _ = _python(path, "csv")
    if rule is not None:
        assert rows == rule
    _same(path, "csv")


def _line(record: dict[str, Any], extra: str = "") -> str:
    text = json.dumps(record)
    return text[:-1] + (", " + extra if extra else "") + "}"


JSONL_LINES = {  # a line DuckDB must not type: the Python reader's line rules read it
    "NaN (DuckDB accepts it)": _line(symptom("S1"), '"x": NaN'),
    "Infinity": _line(symptom("S1"), '"leg_pain_nrs2": -Infinity'),
    "a trailing comma (DuckDB accepts it)": _line(symptom("S1"))[:-1] + ", }",
    "a key given twice": _line(symptom("S1", muscle_spasm=False), '"muscle_spasm": true'),
    "a lone surrogate": _line(symptom("S1", comment="x")).replace('"x"', '"x\\ud800"'),
    "a surrogate pair": _line(symptom("S1", comment="x")).replace('"x"', '"\\ud83d\\ude00"'),
    "nested too deeply for Python": _line(symptom("S1"), '"x": ' + "[" * 5000 + "]" * 5000),
    "an object in a field": _line(symptom("S1"), '"comment": {"a": 1}'),
    "a float in an integer field": _line(symptom("S1", leg_pain_nrs=5.0)),
    "an exponent": _line(symptom("S1"), '"age_years": 1e2'),
    "an integer beyond 64 bits": _line(symptom("S1"), '"leg_pain_nrs": 123456789012345678901234567890'),
    "a 5,000-digit integer": _line(symptom("S1"), '"x": ' + "1" * 5000),
    "a string in a boolean field": _line(symptom("S1", bladder_dysfunction="true")),
    "a number in a boolean field": _line(symptom("S1", bladder_dysfunction=1)),
    "not an object": "[1, 2]",
    "not JSON": '{"event_id": "S1", ',
}


@pytest.mark.parametrize("case", JSONL_LINES, ids=list(JSONL_LINES))
def test_a_jsonl_line_needing_a_special_rule_is_read_by_python_alone(tmp_path: Path, case: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = python_reader._jsonl_record

    def spy(lineno: int, line: str) -> Any:
        seen.append(lineno)
        return real(lineno, line)

    lines = [_line(enrollment("E1")), _line(symptom("S0")), JSONL_LINES[case], _line(symptom("S2"))]
    path = _write(tmp_path, "a.jsonl", ("\n".join(lines) + "\n").encode())
    monkeypatch.setattr("pipeline.ingest.read_duckdb._jsonl_record", spy)
    assert _same(path, "jsonl") == Route("duckdb")
    assert 3 in seen and not {2, 4} & set(seen), "the special line alone went to Python"


JSONL_ROUTES = {
    "CRLF throughout": ("\r\n", "duckdb"),
    # Python splits JSON Lines at LF only; DuckDB at a lone CR too
    "CR alone": ("\r", "python"),
}


@pytest.mark.parametrize("case", JSONL_ROUTES, ids=list(JSONL_ROUTES))
def test_jsonl_line_ends_decide_the_reader(tmp_path: Path, case: str) -> None:
    newline, reader = JSONL_ROUTES[case]
    text = newline.join([_line(enrollment("E1")), "", _line(symptom("S1")), _line(symptom("S2"))]) + newline
    route = _same(_write(tmp_path, "a.jsonl", text.encode()), "jsonl")
    assert route is not None and route.reader == reader


def test_a_jsonl_line_of_a_lone_nul_sends_the_file_to_python(tmp_path: Path) -> None:
    """DuckDB reads a line holding only NUL as an empty line: the bytes no longer add up to the file."""
    text = "\n".join([_line(enrollment("E1")), "\x00", _line(symptom("S1"))]) + "\n"
    route = _same(_write(tmp_path, "a.jsonl", text.encode()), "jsonl")
    assert route is not None and route.reader == "python"


def test_invalid_utf8_in_jsonl_is_not_utf8(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.jsonl", _line(enrollment("E1")).encode() + b"\n" + b'{"comment": "\xed\xa0\x80"}\n')
    assert _duckdb(path, "jsonl")[0] == "not_utf8"
    _same(path, "jsonl")


# --- the rules every reader keeps ---------------------------------------------------------------------------------


def test_record_numbers_are_exact_across_row_groups_and_threads(tmp_path: Path) -> None:
    """300,000 records (three DuckDB row groups), quoted line breaks among them, read on two threads."""
    path = tmp_path / "big.csv"
    with open(path, "w", newline="") as fh:
        fh.write(HEADER + "\n")
        for i in range(1, 300_001):
            occurred = f'"{i}\nx"' if i % 997 == 0 else str(i)  # a quoted line break now and then
            fh.write(f"E{i},withdrawal,NL01,P1,{occurred},{i}\n")
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("SET preserve_insertion_order = false")
    assert read_into(con, path, "csv", FileShape()).reader == "duckdb"
    bad = con.execute(f"SELECT count(*), count(*) FILTER (WHERE _row::VARCHAR != recorded_at "
                      f"OR event_id != 'E' || _row) FROM {DELIVERED}").fetchall()
    assert bad == [(300_000, 0)]


def test_the_decompressed_size_bound_holds_before_duckdb_reads_anything(tmp_path: Path) -> None:
    plain = tmp_path / "plain.jsonl"
    write_events([symptom(f"E{i}", comment="a" * 400) for i in range(2000)], plain)
    path = _write(tmp_path, "a.jsonl.gz", plain.read_bytes())
    con = duckdb.connect()
    with pytest.raises(FileRejected) as err:
        read_into(con, path, "jsonl.gz", FileShape(), limit=200_000)
    assert err.value.rule == "file_too_large" and "decompressed" in err.value.message
    assert read_into(con, path, "jsonl.gz", FileShape(), limit=plain.stat().st_size).reader == "duckdb"


@pytest.mark.parametrize("name", ["f.csv", "f.jsonl", "f.csv.gz", "f.jsonl.gz", "f.parquet"])
def test_the_progress_display_gets_the_bytes_read(tmp_path: Path, name: str) -> None:
    plain = tmp_path / ("plain." + name.split(".")[1])
    write_events([symptom(f"E{i}") for i in range(300)], plain)
    path = plain if name.endswith("parquet") else _write(tmp_path, name, plain.read_bytes())
    shape, reported = FileShape(), []
    read_into(duckdb.connect(), path, name.split(".", 1)[1], shape, on_bytes=reported.append)
    assert shape.bytes_read == reported[-1] == path.stat().st_size
    assert reported == sorted(reported)


# --- differential: random files, both readers -----------------------------------------------------------------------

_CELLS = ["x", "", '"q,"', '""', " s ", "é", '"m\nl"', "E1", "2026-01-05T09:00:00Z", "\x00", "a\tb"]
_HOSTILE = ['"', '"a""b"', 'a"b', '"a"b', "\r\n", "\r", "\n"]
_VALUES = ["1", "-0", "12", "1.5", "1e2", '"x"', '""', "true", "false", "null", '"true"', "[1]", '{"a":1}', "NaN",
           '"\\ud800"', '"\\u00e9"', '"é"', '"a\\nb"', '"\\u0000"', "1" * 30, '"\\\\ud800"', '"\\ud83d\\ude00"',
           '"{x}"', '"[y]"', '"NaN"', '"2026-01-05T09:00:00Z"']
_KEYS = ["leg_pain_nrs", "bladder_dysfunction", "comment", "zz", "_row", "muscle_spasm", "age_years", "event_id"]
_JUNK = ["", "  ", "{", "x", '{"a":1,}', "[]", "1", '{"a":1} x', "\u00a0", '{"a":[1,]}']


def _random_csv(rnd: random.Random) -> bytes:
    nl = rnd.choice(["\n", "\r\n", "\r"])
    extra = rnd.choice(["", ",zz"])
    lines = [HEADER + extra]
    width = 6 + bool(extra)
    for _ in range(rnd.randint(0, 5)):
        hostile = rnd.random() < 0.1
        cells = _CELLS + _HOSTILE if hostile else _CELLS
        lines.append(",".join(rnd.choice(cells) for _ in range(width + (rnd.choice([-1, 1]) if hostile else 0))))
    return (rnd.choice(["", "\ufeff"]) + nl.join(lines) + rnd.choice([nl, ""])).encode()


def _random_jsonl(rnd: random.Random) -> bytes:
    lines = []
    for _ in range(rnd.randint(0, 6)):
        if rnd.random() < 0.15:
            lines.append(rnd.choice(_JUNK))
            continue
        keys = rnd.sample(ENVELOPE, 6) if rnd.random() < 0.9 else []
        keys += [rnd.choice(_KEYS) for _ in range(rnd.randint(0, 6))]
        lines.append("{" + ", ".join(f'"{k}": {rnd.choice(_VALUES)}' for k in keys) + "}")
    nl = rnd.choice(["\n", "\n", "\r\n"])
    return (rnd.choice(["", "\ufeff"]) + nl.join(lines) + rnd.choice([nl, ""])).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_duckdb_and_the_python_reader_agree_on_random_files(tmp_path: Path, fmt: str) -> None:
    rnd = random.Random(10)
    make = _random_csv if fmt == "csv" else _random_jsonl
    readers: dict[str, int] = {}
    for i in range(150):
        route = _same(_write(tmp_path, f"f{i}.{fmt}", make(rnd)), fmt)
        if route is not None:
            readers[route.reader] = readers.get(route.reader, 0) + 1
    assert readers.get("duckdb", 0) > 30, readers  # the comparison really covers DuckDB's side
