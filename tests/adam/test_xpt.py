"""xpt.py: SAS transport v5 files that pyreadstat and pandas.read_sas both read back whole."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.derive.adam.build import AdamError, build_adam
from pipeline.derive.adam.metadata import dataset, datasets
from pipeline.derive.adam.xpt import char_lengths, write_xpt
from tests.derive.factories import derive, enroll, report

from .conftest import Exported
from .readback import by_pandas, by_pyreadstat, expected

NAMES = [d.name for d in datasets()]


def test_names_labels_and_dataset_labels_fit_sas_transport_v5() -> None:
    for ds in datasets():
        assert len(ds.name) <= 8 and 0 < len(ds.label) <= 40
        assert ds.keys[:2] == ("STUDYID", "USUBJID")
        for v in ds.variables:
            assert len(v.name) <= 8 and v.name.isupper() and v.name.isidentifier(), v
            assert 0 < len(v.label) <= 40, v
            assert v.type in ("Char", "Num") and v.origin and v.derivation, v


@pytest.mark.parametrize("name", NAMES)
def test_pyreadstat_reads_back_names_labels_types_lengths_and_every_value(exported: Exported, name: str) -> None:
    ds = dataset(name)
    rows, meta = by_pyreadstat(ds, exported.xpt / f"{name.lower()}.xpt")
    assert meta.table_name == name
    assert meta.file_label == ds.label
    assert meta.column_names == list(ds.names)
    assert meta.column_labels == [v.label for v in ds.variables]
    assert meta.readstat_variable_types == {v.name: "string" if v.type == "Char" else "double" for v in ds.variables}
    widths = char_lengths(exported.tables[name], ds)
    assert {n: meta.variable_storage_width[n] for n in widths} == widths
    assert {n: f for n, f in meta.original_variable_types.items() if f} == {
        v.name: "DATETIME26.6" for v in ds.variables if v.data_type == "datetime"}
    assert len(rows) == exported.tables[name].num_rows > 0
    assert rows == expected(ds, exported.tables[name])


@pytest.mark.parametrize("name", NAMES)
def test_pandas_read_sas_reads_back_every_value(exported: Exported, name: str) -> None:
    ds = dataset(name)
    rows, columns = by_pandas(ds, exported.xpt / f"{name.lower()}.xpt")
    assert columns == list(ds.names)
    assert rows == expected(ds, exported.tables[name])


def test_datetimes_survive_the_sas_epoch_on_both_sides(tmp_path: Path) -> None:
    before = datetime(1959, 12, 31, 23, 59, 59, 250000, tzinfo=UTC)  # a negative SAS datetime
    after = datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)
    con = derive([enroll("P1", when=before), enroll("P2", when=after),
                  report("r1", after.replace(month=3, day=5), patient_id="P2", global_recovery=1)])
    tables = build_adam(con, "TEST")
    ds = dataset("ADSL")
    path = write_xpt(tables["ADSL"], ds, tmp_path / "adsl.xpt", datetime.now(UTC))
    naive = [before.replace(tzinfo=None), after.replace(tzinfo=None)]
    assert [r["RANDDTM"] for r in by_pyreadstat(ds, path)[0]] == naive
    assert [r["RANDDTM"] for r in by_pandas(ds, path)[0]] == naive
    tte = write_xpt(tables["ADTTE"], dataset("ADTTE"), tmp_path / "adtte.xpt", datetime.now(UTC))
    assert by_pyreadstat(dataset("ADTTE"), tte)[0] == expected(dataset("ADTTE"), tables["ADTTE"])


def test_the_same_data_and_creation_instant_give_the_same_bytes(exported: Exported, tmp_path: Path) -> None:
    created = datetime(2026, 3, 1, 8, 30, 15, tzinfo=UTC)
    ds = dataset("ADSL")
    a = write_xpt(exported.tables["ADSL"], ds, tmp_path / "a.xpt", created).read_bytes()
    b = write_xpt(exported.tables["ADSL"], ds, tmp_path / "b.xpt", created).read_bytes()
    assert a == b
    assert a[:80 * 8].count(b"01MAR26:08:30:15") == 4  # library and member headers: created and modified


def test_a_value_longer_than_200_bytes_is_refused_in_one_line(tmp_path: Path) -> None:
    ds = dataset("ADSL")
    con = derive([enroll("P1")])
    table = build_adam(con, "S" * 201)["ADSL"]
    with pytest.raises(AdamError, match=r"ADSL.STUDYID holds a value of 201 bytes"):
        write_xpt(table, ds, tmp_path / "adsl.xpt", datetime.now(UTC))
    assert not list(tmp_path.iterdir())


def test_an_empty_dataset_is_written_with_its_variables(tmp_path: Path) -> None:
    ds = dataset("ADTTE")
    table = build_adam(derive([]), "TEST")["ADTTE"]
    assert isinstance(table, pa.Table) and table.num_rows == 0
    rows, meta = by_pyreadstat(ds, write_xpt(table, ds, tmp_path / "adtte.xpt", datetime.now(UTC)))
    assert rows == [] and meta.column_names == list(ds.names)


@pytest.mark.parametrize("name", NAMES)
def test_records_are_sorted_by_the_adam_ig_keys(exported: Exported, name: str) -> None:
    ds = dataset(name)
    rows = expected(ds, exported.tables[name])
    keys = [tuple(r[k] for k in ds.keys) for r in rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert rows == by_pyreadstat(ds, exported.xpt / f"{name.lower()}.xpt")[0]


def test_zero_is_written_as_eight_zero_bytes(tmp_path: Path) -> None:
    # pandas.read_sas shows it as 5.4e-79 (pandas-dev/pandas#50670); readback.by_pandas maps that back
    ds = dataset("ADTTE")
    table = build_adam(derive([enroll("P1")]), "TEST")["ADTTE"]  # no report: censored at 0 weeks
    data = write_xpt(table, ds, tmp_path / "adtte.xpt", datetime.now(UTC)).read_bytes()
    assert by_pyreadstat(ds, tmp_path / "adtte.xpt")[0][0]["AVAL"] == 0.0
    obs = data.index(b"HEADER RECORD*******OBS     HEADER RECORD") + 80
    offset = sum(8 if v.type == "Num" else char_lengths(table, ds)[v.name]
                 for v in ds.variables[:ds.names.index("AVAL")])
    assert data[obs + offset:obs + offset + 8] == bytes(8)
