"""Site free text made harmless.

HTML: every template is rendered by Jinja with autoescape on, and site text is
never marked safe; nothing here is needed for HTML. CSV: a spreadsheet runs a
cell that starts with ``=``, ``+``, ``-`` or ``@`` (also after a tab, carriage
return or leading spaces) as a formula, e.g. ``=HYPERLINK("http://x","y")``;
such text cells get a leading apostrophe, which spreadsheets show as text
(OWASP "CSV injection").
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.store.files import atomic_write_bytes
from pipeline.textsafe import neutralise_cell

#: Rules whose offending text is never shown: the comment may identify a person (DTS §3).
PHI_RULES = frozenset({"phi_in_comment"})
WITHHELD = "[withheld by trialpipe: possible PHI]"


neutralise_csv_cell = neutralise_cell  # the project's one formula neutraliser (pipeline.textsafe)


def _cell_text(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return "; ".join("" if v is None else str(v) for v in value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)) and getattr(value, "ndim", 0) == 1:
        return "; ".join("" if v is None else str(v) for v in value.tolist())
    return value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` safe to open in a spreadsheet: lists joined, formula-like text neutralised.

    Numeric columns are left alone (a negative number is not a formula).
    """
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_datetime64_any_dtype(out[col]):
            continue
        out[col] = [neutralise_csv_cell(_cell_text(v)) for v in out[col]]
    return out


def write_csv(frame: pd.DataFrame, path: Path, columns: Iterable[str] | None = None) -> Path:
    """Write `frame` as UTF-8 CSV (RFC 4180 quoting) with every text cell neutralised; atomic."""
    cols = list(columns) if columns is not None else list(frame.columns)
    text = neutralise_frame(frame[cols]).to_csv(index=False, lineterminator="\r\n")
    atomic_write_bytes(text.encode("utf-8"), path)
    return path


def shorten(text: Any, limit: int = 400) -> str:
    """Site text cut to `limit` characters for display (escaping is left to the template)."""
    s = "" if text is None else str(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def redact_phi(raw: Any, rules: Iterable[str]) -> Any:
    """A quarantined record for display: its comment withheld when the row was rejected as possible PHI.

    The ingest already stores such comments redacted; this keeps reports safe for older or other records.
    """
    if raw is None or not PHI_RULES & set(rules):
        return raw
    try:
        record = json.loads(raw)
    except (TypeError, ValueError):
        return WITHHELD
    if not isinstance(record, dict):
        return WITHHELD
    if record.get("comment") is not None:
        record["comment"] = WITHHELD
    return json.dumps(record, ensure_ascii=False)
