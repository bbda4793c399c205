"""Site free text in CSV exports (issue 4): formulas are neutralised, everything else kept verbatim."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.report.escape import neutralise_csv_cell, write_csv
from tests.report.helpers import FORMULA, SCRIPT


@pytest.mark.parametrize(("cell", "shown"), [
    (FORMULA, "'" + FORMULA),
    ("+31 6 1234", "'+31 6 1234"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("   =1+1", "'   =1+1"),
    ("pain 3=4", "pain 3=4"),
    (SCRIPT, SCRIPT),
    ("", ""),
    (None, None),
    (-3, -3),
    (2.5, 2.5),
])
def test_a_cell_that_a_spreadsheet_would_run_gets_an_apostrophe(cell: Any, shown: Any) -> None:
    assert neutralise_csv_cell(cell) == shown


def test_csv_listing_keeps_text_verbatim_but_never_as_formula(tmp_path: Path) -> None:
    frame = pd.DataFrame({"comment": [FORMULA, "fine, \"quoted\"\nnext line"], "rules": [["bad_enum", "bad_id"], []],
                          "change": [-2.0, 1.0]})
    path = write_csv(frame, tmp_path / "out.csv")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows == [
        {"comment": "'" + FORMULA, "rules": "bad_enum; bad_id", "change": "-2.0"},
        {"comment": "fine, \"quoted\"\nnext line", "rules": "", "change": "1.0"},
    ]
