"""Round-trip laws (hypothesis): whatever the values (nulls in every column, odd text), the XPT and
the Dataset-JSON files give them back; odd site ids survive the whole way; comments are never exported."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import Site, Study
from pipeline.derive.adam.build import build_adam
from pipeline.derive.adam.dataset_json import write_dataset_json
from pipeline.derive.adam.metadata import Dataset, datasets
from pipeline.derive.adam.xpt import char_lengths, write_xpt
from tests.derive.factories import T0, derive, enroll, ev, report

from .readback import by_dataset_json, by_pandas, by_pyreadstat, dataset_json, expected, pandas_can_count

SETTINGS = settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
CREATED = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
ARROW = {"string": pa.string(), "integer": pa.int64(), "double": pa.float64(), "datetime": pa.timestamp("us", "UTC")}

# text as a SAS character value holds it: no control characters, no trailing blanks (SAS pads with them)
text = st.text(st.characters(categories=["L", "N", "P", "S", "Zs"]), max_size=40).map(str.rstrip)
# doubles inside the range of IBM floats (16**-65 … 16**63), the only numbers XPT can hold
double = st.one_of(st.just(0.0), st.floats(min_value=1e-70, max_value=1e70),
                   st.floats(min_value=-1e70, max_value=-1e-70))
instant = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC))
VALUES = {"string": text, "integer": st.integers(-(10**9), 10**9), "double": double, "datetime": instant}


@st.composite
def tables(draw: st.DrawFn, ds: Dataset) -> pa.Table:
    n = draw(st.integers(1, 6))
    columns = {v.name: draw(st.lists(st.none() | VALUES[v.data_type], min_size=n, max_size=n)) for v in ds.variables}
    return pa.table({v.name: pa.array(columns[v.name], ARROW[v.data_type]) for v in ds.variables})


def write_both(table: pa.Table, ds: Dataset, out: Path) -> tuple[Path, Path]:
    xpt = write_xpt(table, ds, out / f"{ds.name.lower()}.xpt", CREATED)
    js = write_dataset_json(table, ds, out / f"{ds.name.lower()}.json", study_id="S", created=CREATED,
                            last_modified=None, lengths=char_lengths(table, ds))
    return xpt, js


def assert_round_trip(table: pa.Table, ds: Dataset, out: Path) -> None:
    xpt, js = write_both(table, ds, out)
    want = expected(ds, table)
    assert by_pyreadstat(ds, xpt)[0] == want
    if pandas_can_count(ds, table):
        assert by_pandas(ds, xpt)[0] == want
    assert by_dataset_json(ds, dataset_json(js)) == want


@SETTINGS
@given(st.data())
def test_any_values_with_nulls_in_every_column_come_back_from_both_formats(data: st.DataObject) -> None:
    for ds in datasets():
        table = data.draw(tables(ds))
        with tempfile.TemporaryDirectory() as tmp:
            assert_round_trip(table, ds, Path(tmp))


def test_a_table_of_nulls_only_comes_back_from_both_formats(tmp_path: Path) -> None:
    for ds in datasets():
        table = pa.table({v.name: pa.array([None, None], ARROW[v.data_type]) for v in ds.variables})
        assert_round_trip(table, ds, tmp_path)


site_id = st.text(st.characters(categories=["L", "N"]) | st.sampled_from("-_"), min_size=1, max_size=10).filter(
    lambda s: all(c.isalnum() or c in "-_" for c in s))
patient_id = st.text(st.sampled_from("ABCxyz019_-"), min_size=1, max_size=12)
MARKER = "no-export-zq7"
comment = st.text(st.characters(blacklist_categories=["Cs"]), max_size=480).map(lambda s: MARKER + s[:480])


@st.composite
def studies(draw: st.DrawFn) -> tuple[Study, list[dict[str, Any]]]:
    sites = draw(st.lists(site_id, min_size=1, max_size=3, unique=True))
    events: list[dict[str, Any]] = []
    for s_i, site in enumerate(sites):
        for p_i, patient in enumerate(draw(st.lists(patient_id, min_size=1, max_size=3, unique=True))):
            tag = f"{s_i}-{p_i}"
            arm = draw(st.sampled_from(["surgery", "conservative"]))
            events.append(enroll(patient, site_id=site, event_id=f"e{tag}", arm=arm,
                                 sex=draw(st.none() | st.sampled_from("FMX")), comment=draw(st.none() | comment)))
            for k in range(draw(st.integers(0, 5))):
                when = T0 + timedelta(hours=draw(st.integers(-20 * 24, 60 * 24)))
                events.append(report(f"r{tag}-{k}", when, patient_id=patient, leg=draw(st.integers(0, 10)),
                                     global_recovery=draw(st.none() | st.integers(1, 7)), comment=draw(comment)))
                events[-1]["site_id"] = site
            if draw(st.booleans()):
                events.append(ev(f"w{tag}", "withdrawal", T0 + timedelta(days=draw(st.integers(1, 60))),
                                 patient_id=patient, site_id=site, comment=draw(comment)))
    return Study("ODD-1", ("surgery", "conservative"), tuple(Site(s) for s in sites)), events


@settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(studies())
def test_odd_site_ids_survive_and_comments_are_never_exported(case: tuple[Study, list[dict[str, Any]]]) -> None:
    study, events = case
    tables = build_adam(derive(events, study=study), study.study_id)
    assert set(tables["ADSL"].column("SITEID").to_pylist()) == {e["site_id"] for e in events}
    with tempfile.TemporaryDirectory() as tmp:
        for ds in datasets():
            assert_round_trip(tables[ds.name], ds, Path(tmp))
        for path in Path(tmp).iterdir():
            assert MARKER.encode() not in path.read_bytes(), path.name
