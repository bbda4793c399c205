"""CDISC Dataset-JSON v1.1 files: the JSON successor of SAS transport.

Top-level metadata, then `columns` (itemOID, name, label, dataType, targetDataType,
length, displayFormat, keySequence), then `rows`, one JSON array per record. Datetimes
are ISO 8601 strings in UTC (dataType datetime, targetDataType integer: a SAS numeric
datetime on import, as ADaM wants); numbers keep every bit (JSON numbers as Python writes
them, which read back to the same double); no value is null.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.derive.adam.metadata import Dataset

DATASET_JSON_VERSION = "1.1.0"
ADAMIG_VERSION = "1.3"


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="seconds")


def iso_value(instant: datetime) -> str:
    """A datetime value: ISO 8601 in UTC without offset, fractions of a second only when there are some."""
    naive = instant.astimezone(UTC).replace(tzinfo=None)
    return naive.isoformat(timespec="microseconds" if naive.microsecond else "seconds")


def _software_version() -> str:
    try:
        return version("trialpipe")
    except PackageNotFoundError:  # a source tree that is not installed
        return "unknown"


def columns(ds: Dataset, lengths: dict[str, int]) -> list[dict[str, Any]]:
    out = []
    for v in ds.variables:
        col: dict[str, Any] = {"itemOID": f"IT.{ds.name}.{v.name}", "name": v.name, "label": v.label,
                               "dataType": v.data_type}
        if v.data_type == "datetime":
            col["targetDataType"] = "integer"
        if v.name in lengths:
            col["length"] = lengths[v.name]
        if v.display_format:
            col["displayFormat"] = "DATETIME26.6" if v.data_type == "datetime" else v.display_format
        if v.key is not None:
            col["keySequence"] = v.key
        out.append(col)
    return out


def _cell(value: Any, data_type: str) -> Any:
    if value is None:
        return None
    if data_type == "datetime":
        return iso_value(value)
    if data_type == "integer":
        return int(value)
    if data_type == "double":
        return float(value)
    return str(value)


def header(ds: Dataset, records: int, study_id: str, created: datetime, last_modified: datetime | None,
           lengths: dict[str, int]) -> dict[str, Any]:
    head: dict[str, Any] = {
        "datasetJSONCreationDateTime": _iso(created),
        "datasetJSONVersion": DATASET_JSON_VERSION,
        "fileOID": f"trialpipe.{study_id}.ADaM.{ds.name}",
    }
    if last_modified is not None:
        head["dbLastModifiedDateTime"] = _iso(min(last_modified, created))
    head.update({
        "originator": "trialpipe",
        "sourceSystem": {"name": "trialpipe", "version": _software_version()},
        "studyOID": study_id,
        "metaDataVersionOID": f"MDV.{study_id}.ADaMIG.{ADAMIG_VERSION}",
        "metaDataRef": "adam_metadata.csv",
        "itemGroupOID": f"IG.{ds.name}",
        "records": records,
        "name": ds.name,
        "label": ds.label,
        "columns": columns(ds, lengths),
    })
    return head


def write_dataset_json(table: pa.Table, ds: Dataset, path: Path, *, study_id: str, created: datetime,
                       last_modified: datetime | None, lengths: dict[str, int]) -> Path:
    """Write one dataset as Dataset-JSON v1.1 (replaced whole, never half-written)."""
    head = header(ds, table.num_rows, study_id, created, last_modified, lengths)
    types = [v.data_type for v in ds.variables]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    try:
        with open(partial, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(json.dumps(head, ensure_ascii=False)[:-1])  # open: rows follow
            fh.write(', "rows": [')
            sep = "\n"
            for batch in table.select(list(ds.names)).to_batches():
                for row in zip(*(c.to_pylist() for c in batch.columns), strict=True):
                    fh.write(sep + json.dumps([_cell(x, t) for x, t in zip(row, types, strict=True)],
                                              ensure_ascii=False, allow_nan=False))
                    sep = ",\n"
            fh.write("\n]}\n")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
