"""write_events: every DTS format reads back with the values written (pyarrow, DuckDB, the standard library)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.simulate import FORMATS, write_events
from tests.simulate.dts import read_rows

ROWS: list[dict[str, Any]] = [
    {"event_id": "E1", "event_type": "symptom_report", "site_id": "NL01", "patient_id": "P1",
     "occurred_at": "2026-01-05T09:00:00+01:00", "recorded_at": "2026-01-05T09:10:00Z",
     "leg_pain_nrs": 7, "muscle_spasm": True, "comment": 'said "better", then, "worse"'},
    {"event_id": "E2", "event_type": "symptom_report", "site_id": "NL01", "patient_id": "P1",
     "occurred_at": "2026-01-06T09:00:00-05:00", "recorded_at": "2026-01-06T15:00:00Z",
     "leg_pain_nrs": None, "muscle_spasm": False, "comment": "Patiënt voelt zich beter; naïve café"},
    {"event_id": "E3", "event_type": "withdrawal", "site_id": "NL01", "patient_id": "P1",
     "occurred_at": "2026-01-07T09:00:00Z", "recorded_at": "2026-01-07T09:00:00Z"},
]


def duckdb_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    con = duckdb.connect()
    if fmt.startswith("csv"):
        rel = con.sql(f"select * from read_csv('{path}', header = true, all_varchar = true)")
    else:
        types = {"leg_pain_nrs": "BIGINT", "muscle_spasm": "BOOLEAN"}
        columns = ", ".join(f"'{n}': '{types.get(n, 'VARCHAR')}'" for n in dict.fromkeys(k for r in ROWS for k in r))
        rel = con.sql(f"select * from read_json('{path}', format = 'newline_delimited', columns = {{{columns}}})")
    return [dict(zip(rel.columns, values, strict=True)) for values in rel.fetchall()]


def expected_text(rows: list[dict[str, Any]]) -> list[dict[str, str | None]]:
    names = list(dict.fromkeys(k for r in rows for k in r))
    def text(v: Any) -> str | None:
        return None if v is None else ("true" if v else "false") if isinstance(v, bool) else str(v)
    return [{n: text(r.get(n)) for n in names} for r in rows]


def present(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not None}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_back_the_values_written(tmp_path: Path, fmt: str) -> None:
    path = write_events(ROWS, tmp_path / f"d.{fmt}")
    if fmt == "parquet":
        back = pq.read_table(path).to_pylist()
        assert back == [{n: r.get(n) for n in back[0]} for r in ROWS]
    elif fmt.startswith("jsonl"):
        assert duckdb_rows(path, fmt) == [{n: r.get(n) for n in ROWS[0]} for r in ROWS]
    else:
        assert duckdb_rows(path, fmt) == expected_text(ROWS)
    assert [present(r) for r in read_rows(path)] == [present(r) for r in expected_text(ROWS)]


def test_csv_is_rfc4180_with_empty_cells_for_null(tmp_path: Path) -> None:
    text = write_events(ROWS[:2], tmp_path / "d.csv").read_text(encoding="utf-8")
    header, first, second = text.splitlines()
    assert header == "event_id,event_type,site_id,patient_id,occurred_at,recorded_at,leg_pain_nrs,muscle_spasm,comment"
    assert first.endswith(',7,true,"said ""better"", then, ""worse"""')
    assert ',,false,"Patiënt' in second


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_gz_is_the_gzip_of_the_plain_bytes_and_reproducible(tmp_path: Path, fmt: str) -> None:
    plain = write_events(ROWS, tmp_path / f"d.{fmt}").read_bytes()
    zipped = write_events(ROWS, tmp_path / f"d.{fmt}.gz").read_bytes()
    assert gzip.decompress(zipped) == plain
    assert write_events(ROWS, tmp_path / f"again.{fmt}.gz").read_bytes() == zipped


def test_jsonl_keeps_each_values_own_type(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [{"event_id": "E1", "leg_pain_nrs": "7", "muscle_spasm": "true"},
                                  {"event_id": "E2", "leg_pain_nrs": 7}]
    lines = write_events(rows, tmp_path / "d.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines == ['{"event_id": "E1", "leg_pain_nrs": "7", "muscle_spasm": "true"}',
                     '{"event_id": "E2", "leg_pain_nrs": 7}']


def test_a_column_mixing_types_is_written_as_text(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [{"event_id": "E1", "leg_pain_nrs": "five"}, {"event_id": "E2", "leg_pain_nrs": 5}]
    table = pq.read_table(write_events(rows, tmp_path / "d.parquet"))
    assert table.column("leg_pain_nrs").to_pylist() == ["five", "5"]


def test_an_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not one of the DTS formats"):
        write_events(ROWS, tmp_path / "d.xlsx")


cell = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40),
                 st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.tuples(cell, cell), min_size=1, max_size=6), fmt=st.sampled_from(FORMATS))
def test_round_trip_property(tmp_path: Path, values: list[tuple[Any, Any]], fmt: str) -> None:
    rows = [{"event_id": f"E{i}", "a": a, "b": b} for i, (a, b) in enumerate(values)]
    path = write_events(rows, tmp_path / f"p.{fmt}")
    assert read_rows(path) == expected_text(rows)
