"""SAS transport (XPT version 5) files through pyreadstat, the format regulators take.

Names are at most 8 characters and labels at most 40 (readstat refuses longer ones);
each character variable is as long as its longest value in UTF-8 bytes (at least 1, at
most 200); datetimes are SAS datetimes (seconds since 1960-01-01) with format DATETIME26.6.
The creation instant in the headers is the one given, so the same data and instant give
the same bytes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyreadstat

from pipeline.derive.adam.build import XPT_MAX_CHAR, AdamError
from pipeline.derive.adam.metadata import Dataset

DATETIME_FORMAT = "DATETIME26.6"
#: the header timestamp fields (ddMONyy:hh:mm:ss) appear before the first NAMESTR record
_HEADER_STAMP = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")
_NAMESTR = b"HEADER RECORD*******NAMESTR"


def char_lengths(table: pa.Table, ds: Dataset) -> dict[str, int]:
    """The length of each character variable: its longest value in UTF-8 bytes, at least 1."""
    lengths = {}
    for v in ds.variables:
        if v.type == "Char":
            longest = pc.max(pc.binary_length(table.column(v.name))).as_py()
            lengths[v.name] = max(1, longest or 0)
    return lengths


def to_frame(table: pa.Table, ds: Dataset) -> pd.DataFrame:
    """The pandas frame pyreadstat writes: text with '' for no value, numbers as float, naive UTC datetimes."""
    columns: dict[str, pd.Series] = {}
    for v in ds.variables:
        values = table.column(v.name)
        if v.type == "Char":
            columns[v.name] = pd.Series(pc.fill_null(values, "").to_numpy(zero_copy_only=False), dtype=object)
        elif v.data_type == "datetime":
            series = values.to_pandas()
            columns[v.name] = pd.to_datetime(series, utc=True).dt.tz_convert(None).astype("datetime64[us]")
        else:
            columns[v.name] = pd.Series(values.to_pandas(), dtype="float64")
    return pd.DataFrame(columns)


def sas_stamp(instant: datetime) -> bytes:
    """An instant as the XPT header writes it (ddMONyy:hh:mm:ss, UTC)."""
    return instant.astimezone(UTC).strftime("%d%b%y:%H:%M:%S").upper().encode("ascii")


def write_xpt(table: pa.Table, ds: Dataset, path: Path, created: datetime) -> Path:
    """Write one dataset as an XPT v5 file named `path` (replaced whole, never half-written)."""
    too_long = {n: width for n, width in char_lengths(table, ds).items() if width > XPT_MAX_CHAR}
    if too_long:
        name, width = next(iter(too_long.items()))
        raise AdamError(f"{ds.name}.{name} holds a value of {width} bytes; SAS transport v5 allows {XPT_MAX_CHAR}")
    formats = {v.name: DATETIME_FORMAT for v in ds.variables if v.data_type == "datetime"}
    labels: Mapping[str, str | None] = {v.name: v.label for v in ds.variables}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    try:
        pyreadstat.write_xport(to_frame(table, ds), str(partial), file_label=ds.label, column_labels=dict(labels),
                               table_name=ds.name, file_format_version=5, variable_format=formats)
        _stamp_headers(partial, created)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _stamp_headers(path: Path, created: datetime) -> None:
    """Put `created` into the header timestamps (readstat writes the clock's time, to the second)."""
    data = bytearray(path.read_bytes())
    end = data.find(_NAMESTR)
    stamp = sas_stamp(created)
    for match in _HEADER_STAMP.finditer(bytes(data[:end])):
        data[match.start():match.end()] = stamp
    path.write_bytes(bytes(data))
