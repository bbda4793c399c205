"""`trialpipe export --format xpt|dataset-json`: the ADaM files, cut at --as-of like the other formats."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.config import Paths
from pipeline.derive.adam.metadata import dataset
from pipeline.store.audit import adopt
from tests.derive.factories import INGESTED, at, enroll, report, write_warehouse

from .readback import by_dataset_json, by_pyreadstat, dataset_json

STUDY_TOML = 'study_id = "TEST"\narms = ["surgery", "conservative"]\n[[sites]]\nid = "S1"\n[[sites]]\nid = "S2"\n'


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    paths = Paths(tmp_path / "study.toml", tmp_path / "landing", tmp_path / "warehouse")
    paths.study.write_text(STUDY_TOML, encoding="utf-8")
    write_warehouse(paths.warehouse, [
        enroll("P1", batch_id="b1"), report("r1", at(-1), leg=7, batch_id="b1"),
        report("r2", at(10), leg=2, global_recovery=2, batch_id="b1"),
        enroll("P2", site_id="S2", batch_id="b2", ingested=INGESTED + timedelta(days=3)),
    ])
    adopt(paths)  # the factory writes a warehouse as before the audit chain: chain it, as an operator would
    return paths


def export(paths: Paths, fmt: str, out: Path, *extra: str) -> list[str]:
    result = CliRunner().invoke(main, ["export", "--format", fmt, "--out", str(out), "--study", str(paths.study),
                                       "--warehouse", str(paths.warehouse), *extra])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return [Path(line).name for line in result.stdout.splitlines()]


@pytest.mark.parametrize(("fmt", "suffix"), [("xpt", "xpt"), ("dataset-json", "json")])
def test_export_writes_the_three_datasets_and_the_metadata(paths: Paths, tmp_path: Path, fmt: str,
                                                           suffix: str) -> None:
    written = export(paths, fmt, tmp_path / fmt)
    assert written == [f"adsl.{suffix}", f"adeff.{suffix}", f"adtte.{suffix}", "adam_metadata.csv"]
    assert sorted(p.name for p in (tmp_path / fmt).iterdir()) == sorted(written)


def test_as_of_cuts_the_adam_datasets_like_the_tables(paths: Paths, tmp_path: Path) -> None:
    export(paths, "xpt", tmp_path / "now")
    export(paths, "xpt", tmp_path / "then", "--as-of", INGESTED.isoformat())
    export(paths, "dataset-json", tmp_path / "then-json", "--as-of", INGESTED.isoformat())
    adsl = dataset("ADSL")
    now = [r["USUBJID"] for r in by_pyreadstat(adsl, tmp_path / "now" / "adsl.xpt")[0]]
    then = [r["USUBJID"] for r in by_pyreadstat(adsl, tmp_path / "then" / "adsl.xpt")[0]]
    assert (now, then) == (["TEST-S1-P1", "TEST-S2-P2"], ["TEST-S1-P1"])
    doc = dataset_json(tmp_path / "then-json" / "adsl.json")
    assert [r["USUBJID"] for r in by_dataset_json(adsl, doc)] == then
    assert doc["dbLastModifiedDateTime"] == INGESTED.isoformat()


def test_the_metadata_table_lists_every_variable_with_its_written_length(paths: Paths, tmp_path: Path) -> None:
    import csv

    export(paths, "xpt", tmp_path / "x")
    with open(tmp_path / "x" / "adam_metadata.csv", newline="", encoding="utf-8") as fh:
        meta = list(csv.DictReader(fh))
    for name in ("ADSL", "ADEFF", "ADTTE"):
        ds = dataset(name)
        mine = [m for m in meta if m["dataset"] == name]
        assert [m["variable"] for m in mine] == list(ds.names)
        _, xpt = by_pyreadstat(ds, tmp_path / "x" / f"{name.lower()}.xpt")
        assert {m["variable"]: int(m["length"]) for m in mine} == xpt.variable_storage_width
        assert all(m["label"] and m["origin"] and m["derivation"] and m["type"] in ("Char", "Num") for m in mine)
        assert {m["dataset_label"] for m in mine} == {ds.label}


def test_an_unknown_format_is_still_refused_in_one_line(paths: Paths, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["export", "--format", "sas7bdat", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "'sas7bdat' is not one of 'csv', 'parquet', 'xpt', 'dataset-json'" in result.stderr


@pytest.mark.slow
def test_the_demo_writes_the_adam_datasets_under_the_warehouse(tmp_path: Path) -> None:
    where = ["--study", str(tmp_path / "study.toml"), "--landing", str(tmp_path / "landing"),
             "--warehouse", str(tmp_path / "warehouse")]
    result = CliRunner().invoke(main, ["demo", "--patients", "6", "--no-faults", *where])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    adam = tmp_path / "warehouse" / "export" / "adam"
    assert sorted(p.name for p in adam.iterdir()) == sorted(
        ["adam_metadata.csv"] + [f"{d}.{x}" for d in ("adsl", "adeff", "adtte") for x in ("xpt", "json")])
    assert len(by_pyreadstat(dataset("ADSL"), adam / "adsl.xpt")[0]) == 6


def test_the_command_line_offers_every_export_format() -> None:
    from pipeline.derive.export import EXPORT_FORMATS

    option = next(p for p in main.commands["export"].params if p.name == "fmt")
    assert tuple(option.type.choices) == EXPORT_FORMATS  # type: ignore[attr-defined]
