"""Free text from sites is data, never markup or a formula: the one place that says how."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

#: A cell starting with one of these (after leading spaces) would run as a spreadsheet formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")


def neutralise_cell(value: Any) -> Any:
    """The cell as a spreadsheet should see it: text that would run as a formula gets a leading '."""
    if isinstance(value, str) and value and value.lstrip(" ").startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """CSV for spreadsheets: the given columns of each row, every cell formula-safe."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: neutralise_cell(r[k]) for k in columns})
    return buf.getvalue()
