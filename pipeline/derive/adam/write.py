"""Write ADSL, ADEFF and ADTTE (SAS transport or Dataset-JSON) and adam_metadata.csv beside them."""

from __future__ import annotations

import csv
import io
import os
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from pipeline.derive.adam.build import build_adam
from pipeline.derive.adam.dataset_json import write_dataset_json
from pipeline.derive.adam.metadata import datasets
from pipeline.derive.adam.xpt import char_lengths, write_xpt
from pipeline.textsafe import neutralise_cell

ADAM_FORMATS = ("xpt", "dataset-json")
SUFFIX = {"xpt": "xpt", "dataset-json": "json"}
METADATA_FILE = "adam_metadata.csv"
METADATA_COLUMNS = ("dataset", "dataset_label", "variable", "label", "type", "length", "data_type",
                    "display_format", "key_sequence", "origin", "derivation")


def metadata_rows(tables: dict[str, pa.Table]) -> list[dict[str, object]]:
    """One row per variable: what adam_metadata.csv holds (lengths as written: bytes, or 8 for numbers)."""
    rows = []
    for ds in datasets():
        lengths = char_lengths(tables[ds.name], ds)
        for v in ds.variables:
            rows.append({
                "dataset": ds.name, "dataset_label": ds.label, "variable": v.name, "label": v.label,
                "type": v.type, "length": lengths.get(v.name, 8), "data_type": v.data_type,
                "display_format": "DATETIME26.6" if v.data_type == "datetime" else v.display_format,
                "key_sequence": v.key if v.key is not None else "", "origin": v.origin, "derivation": v.derivation,
            })
    return rows


def write_metadata(tables: dict[str, pa.Table], path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METADATA_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in metadata_rows(tables):
        writer.writerow({k: neutralise_cell(v) for k, v in row.items()})
    partial = path.with_name(f".{path.name}.part")
    partial.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(partial, path)
    return path


def write_adam(con: duckdb.DuckDBPyConnection, study_id: str, out: Path, fmt: str, created: datetime) -> list[Path]:
    """Write <out>/adsl|adeff|adtte.xpt (or .json) and <out>/adam_metadata.csv; returns the paths.

    `con` holds a derivation cut at the as-of instant (api.derive_in_memory). `created` is the
    creation instant written into the files' headers.
    """
    if fmt not in ADAM_FORMATS:
        raise ValueError(f"unknown ADaM format {fmt!r} (one of {', '.join(ADAM_FORMATS)})")
    tables = build_adam(con, study_id)
    out.mkdir(parents=True, exist_ok=True)
    ((last_modified,),) = con.execute("select max(ingested_at) from accepted_events").fetchall()
    paths = []
    for ds in datasets():
        path = out / f"{ds.name.lower()}.{SUFFIX[fmt]}"
        table = tables[ds.name]
        if fmt == "xpt":
            paths.append(write_xpt(table, ds, path, created))
        else:
            paths.append(write_dataset_json(table, ds, path, study_id=study_id, created=created,
                                            last_modified=last_modified, lengths=char_lengths(table, ds)))
    paths.append(write_metadata(tables, out / METADATA_FILE))
    return paths
