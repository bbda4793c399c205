"""export.py and api.export: every derived table as CSV or Parquet, deterministic and spreadsheet-safe."""

from __future__ import annotations

import csv
import hashlib
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pipeline.config import Paths
from pipeline.derive.api import derive, export
from pipeline.derive.build import TABLES
from pipeline.derive.export import neutralise_sql
from pipeline.textsafe import neutralise_cell

from .factories import INGESTED, STUDY, at, enroll, report, write_warehouse


@pytest.mark.parametrize("text", [
    "=SUM(A1)", "+1", "-A1", "@cmd", "  =x", "\tx", "\rx", "\nx", "P-1", "a=b", "", "  ", "it's", None,
])
def test_csv_cells_follow_the_projects_one_neutraliser(text: str | None) -> None:
    con = duckdb.connect()
    ((got,),) = con.execute(f"select {neutralise_sql('cell')} from (select ?::varchar as cell)", [text]).fetchall()
    assert got == neutralise_cell(text)


@pytest.fixture
def warehouse(paths: Paths) -> Paths:
    write_warehouse(paths.warehouse, [
        enroll("-P1", batch_id="b1"), report("r1", at(-1), leg=7, patient_id="-P1", batch_id="b1"),
        report("r2", at(3), leg=5, patient_id="-P1", batch_id="b1"),
        enroll("P2", batch_id="b2", ingested=INGESTED + timedelta(days=3)),
    ])
    return paths


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_every_table(warehouse: Paths, tmp_path: Path, fmt: str) -> None:
    written = export(warehouse, STUDY, fmt, tmp_path / "out")
    assert [p.name for p in written] == [f"{t}.{fmt}" for t in (*TABLES, "events", "quarantine", "alerts")]
    assert all(p.is_file() for p in written)


def test_csv_neutralises_formula_like_text_but_parquet_keeps_it(warehouse: Paths, tmp_path: Path) -> None:
    export(warehouse, STUDY, "csv", tmp_path / "csv")
    export(warehouse, STUDY, "parquet", tmp_path / "pq")
    with open(tmp_path / "csv" / "trajectory.csv", newline="") as fh:
        trajectory = list(csv.DictReader(fh))
    first = trajectory[0]
    assert (first["patient_id"], first["param"], first["week"], first["value"]) == ("'-P1", "BACKPAIN", "0", "3.0")
    assert "-2.0" in [r["change"] for r in trajectory]  # numbers are not text: negative values stay numbers
    assert pq.read_table(tmp_path / "pq" / "trajectory.parquet").column("patient_id")[0].as_py() == "-P1"


def test_exports_are_byte_for_byte_reproducible(warehouse: Paths, tmp_path: Path) -> None:
    def digests(out: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}

    for fmt in ("csv", "parquet"):
        export(warehouse, STUDY, fmt, tmp_path / "a")
        export(warehouse, STUDY, fmt, tmp_path / "b")
    assert digests(tmp_path / "a") == digests(tmp_path / "b")


def test_export_as_of_leaves_trial_duckdb_alone(warehouse: Paths, tmp_path: Path) -> None:
    derive(warehouse, STUDY)
    export(warehouse, STUDY, "csv", tmp_path / "then", as_of=INGESTED)
    with open(tmp_path / "then" / "recovery_summary.csv", newline="") as fh:
        assert sorted((r["arm"], r["n"]) for r in csv.DictReader(fh)) == [("conservative", "0"), ("surgery", "1")]
    con = duckdb.connect(str(warehouse.db_path), read_only=True)
    assert con.sql("select sum(n) from recovery_summary").fetchall() == [(2,)]
    con.close()
