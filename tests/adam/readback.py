"""Read ADaM files back with two independent readers and put every value in one comparable shape.

Shape: text as str ('' for no value: SAS has no null text), numbers as float or None,
datetimes as naive UTC datetimes (microseconds) or None.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyreadstat

from pipeline.derive.adam.metadata import Dataset

SAS_EPOCH = datetime(1960, 1, 1)
#: pandas reads an XPT zero (eight zero bytes, as SAS writes it) as the smallest IBM float 16**-65:
#: pandas-dev/pandas#50670, open. Only pandas' values are mapped back.
PANDAS_ZERO = 16.0 ** -65


def _num(x: Any) -> float | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return float(x)


def _dt(x: Any) -> datetime | None:
    if x is None or x is pd.NaT or (isinstance(x, float) and math.isnan(x)):
        return None
    if isinstance(x, pd.Timestamp):
        return x.to_pydatetime()
    if isinstance(x, datetime):
        return x.astimezone(UTC).replace(tzinfo=None) if x.tzinfo else x
    # a SAS datetime (seconds since 1960), rounded to the microsecond exactly (x * 1e6 in floats can miss by one)
    return SAS_EPOCH + timedelta(microseconds=round(Fraction(float(x)) * 1_000_000))


def _text(x: Any) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x)


def normalise(ds: Dataset, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        shaped: dict[str, Any] = {}
        for v in ds.variables:
            x = r[v.name]
            shaped[v.name] = _text(x) if v.type == "Char" else _dt(x) if v.data_type == "datetime" else _num(x)
        out.append(shaped)
    return out


def expected(ds: Dataset, table: pa.Table) -> list[dict[str, Any]]:
    return normalise(ds, table.to_pylist())


def by_pyreadstat(ds: Dataset, path: Path) -> tuple[list[dict[str, Any]], Any]:
    df, meta = pyreadstat.read_xport(str(path), encoding="utf-8")
    return normalise(ds, df.to_dict("records")), meta


def pandas_can_count(ds: Dataset, table: pa.Table) -> bool:
    """pandas.read_sas counts the records by the file's length only when a record is longer than 80 bytes;
    shorter ones it guesses from trailing blanks, which blank values fool (a StopIteration). It cannot read
    a file of no records either. The datasets of a real study have long records (ADSL's shortest is
    near 80 bytes and ends with SAFFL = 'Y'); the property tests make short ones."""
    from pipeline.derive.adam.xpt import char_lengths

    width = sum(char_lengths(table, ds).values()) + 8 * sum(v.type == "Num" for v in ds.variables)
    return table.num_rows > 0 and width > 80


def by_pandas(ds: Dataset, path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """pandas.read_sas (its own XPT reader; datetimes come back as SAS numbers); see pandas_can_count."""
    df = pd.read_sas(str(path), format="xport", encoding="utf-8")
    records = [{k: 0.0 if isinstance(x, float) and x == PANDAS_ZERO else x for k, x in r.items()}
               for r in df.to_dict("records")]
    return normalise(ds, records), list(df.columns)


def dataset_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def by_dataset_json(ds: Dataset, doc: dict[str, Any]) -> list[dict[str, Any]]:
    names = [c["name"] for c in doc["columns"]]
    rows = []
    for row in doc.get("rows", []):
        rec = dict(zip(names, row, strict=True))
        for v in ds.variables:
            if v.data_type == "datetime" and rec[v.name] is not None:
                rec[v.name] = datetime.fromisoformat(rec[v.name])
        rows.append(rec)
    return normalise(ds, rows)
