"""dataset_json.py: CDISC Dataset-JSON v1.1, checked against the specification's structure, with the XPT's values."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest

from pipeline.derive.adam.metadata import dataset, datasets

from .conftest import Exported
from .readback import by_dataset_json, by_pyreadstat, dataset_json, expected

NAMES = [d.name for d in datasets()]
#: Dataset-JSON v1.1 (CDISC, dataset-json1-1): the top-level attributes, required ones marked True
TOP_LEVEL = {
    "datasetJSONCreationDateTime": True, "datasetJSONVersion": True, "fileOID": False,
    "dbLastModifiedDateTime": False, "originator": False, "sourceSystem": False, "studyOID": False,
    "metaDataVersionOID": False, "metaDataRef": False, "itemGroupOID": True, "isReferenceData": False,
    "records": True, "name": True, "label": True, "columns": True, "rows": False,
}
COLUMN = {"itemOID": True, "name": True, "label": True, "dataType": True, "targetDataType": False,
          "length": False, "displayFormat": False, "keySequence": False}
DATA_TYPES = {"string", "integer", "decimal", "float", "double", "boolean", "datetime", "date", "time", "URI"}
DATETIME = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?"
                      r"(([+-]([01]\d|2[0-3]):[0-5]\d)|Z)?$")
#: the JSON type a value of each dataType has in `rows` (the specification's "Supported Column Data Type Combinations")
JSON_TYPE: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "double": (float, int),
                                          "datetime": (str,)}


def check_v11_structure(doc: dict[str, Any]) -> None:
    assert set(doc) <= set(TOP_LEVEL), set(doc) - set(TOP_LEVEL)
    assert all(k in doc for k, required in TOP_LEVEL.items() if required)
    assert DATETIME.match(doc["datasetJSONCreationDateTime"])
    assert re.fullmatch(r"1\.1(\.(0|[1-9]\d*))?", doc["datasetJSONVersion"])
    if "dbLastModifiedDateTime" in doc:
        assert DATETIME.match(doc["dbLastModifiedDateTime"])
        assert datetime.fromisoformat(doc["dbLastModifiedDateTime"]) <= datetime.fromisoformat(
            doc["datasetJSONCreationDateTime"])
    for key in ("fileOID", "studyOID", "metaDataVersionOID", "itemGroupOID", "name"):
        assert isinstance(doc[key], str) and doc[key], key
    assert isinstance(doc["label"], str) and isinstance(doc["originator"], str)
    system = doc["sourceSystem"]
    assert set(system) == {"name", "version"} and all(isinstance(v, str) for v in system.values())
    assert isinstance(doc["records"], int) and not isinstance(doc["records"], bool) and doc["records"] >= 0
    assert doc["records"] == len(doc["rows"])
    keys = []
    for col in doc["columns"]:
        assert set(col) <= set(COLUMN) and all(k in col for k, required in COLUMN.items() if required), col
        assert all(isinstance(col[k], str) for k in ("itemOID", "name", "label", "dataType"))
        assert col["dataType"] in DATA_TYPES
        assert col.get("targetDataType", "integer") in ("integer", "decimal")
        for k in ("length", "keySequence"):
            if k in col:
                assert isinstance(col[k], int) and col[k] >= 1
        if "keySequence" in col:
            keys.append(col["keySequence"])
    assert sorted(keys) == list(range(1, len(keys) + 1))
    assert len({c["itemOID"] for c in doc["columns"]}) == len(doc["columns"])
    for row in doc["rows"]:
        assert len(row) == len(doc["columns"])
        for value, col in zip(row, doc["columns"], strict=True):
            if value is not None:
                assert isinstance(value, JSON_TYPE[col["dataType"]]) and not isinstance(value, bool), (col, value)
                if col["dataType"] == "datetime":
                    assert DATETIME.match(value)
                if "length" in col:
                    assert len(value.encode("utf-8")) <= col["length"]


@pytest.mark.parametrize("name", NAMES)
def test_each_file_has_the_v11_structure(exported: Exported, name: str) -> None:
    doc = dataset_json(exported.json / f"{name.lower()}.json")
    check_v11_structure(doc)
    ds = dataset(name)
    assert (doc["name"], doc["label"], doc["itemGroupOID"], doc["studyOID"]) == (
        name, ds.label, f"IG.{name}", exported.study.study_id)
    assert doc["records"] == exported.tables[name].num_rows > 0
    assert [c["name"] for c in doc["columns"]] == list(ds.names)
    assert [c["label"] for c in doc["columns"]] == [v.label for v in ds.variables]
    assert [c["itemOID"] for c in doc["columns"]] == [f"IT.{name}.{v}" for v in ds.names]
    keyed = sorted((c for c in doc["columns"] if "keySequence" in c), key=lambda c: c["keySequence"])
    assert tuple(c["name"] for c in keyed) == ds.keys
    for col in doc["columns"]:
        if col["dataType"] == "datetime":
            assert (col["targetDataType"], col["displayFormat"]) == ("integer", "DATETIME26.6")


@pytest.mark.parametrize("name", NAMES)
def test_dataset_json_holds_the_values_of_the_xpt(exported: Exported, name: str) -> None:
    ds = dataset(name)
    from_json = by_dataset_json(ds, dataset_json(exported.json / f"{name.lower()}.json"))
    from_xpt, meta = by_pyreadstat(ds, exported.xpt / f"{name.lower()}.xpt")
    assert from_json == from_xpt == expected(ds, exported.tables[name])
    doc = dataset_json(exported.json / f"{name.lower()}.json")
    lengths = {c["name"]: c["length"] for c in doc["columns"] if "length" in c}
    assert lengths == {v.name: meta.variable_storage_width[v.name] for v in ds.variables if v.type == "Char"}


def test_nulls_stay_null_in_json(exported: Exported) -> None:
    doc = dataset_json(exported.json / "adeff.json")
    names = [c["name"] for c in doc["columns"]]
    backpain = [dict(zip(names, r, strict=True)) for r in doc["rows"] if r[names.index("PARAMCD")] == "BACKPAIN"]
    assert all(r["CRIT1FL"] is None and r["PWSTAT"] is None and r["IMPSIGN"] is None for r in backpain)
