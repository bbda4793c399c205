"""An independent reader of delivered files and a literal DTS field checker, for the simulator tests.

Neither uses the simulator's own code: files are read with the standard library
(csv, json, gzip) and pyarrow, every value normalised to the text a site sent
(None for empty), and `violations` applies DTS §3/§4 as written.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.schema import ENVELOPE, FIELD_BY_NAME, REQUIRED_ENVELOPE, TYPE_FIELDS, TYPE_REQUIRED

Row = dict[str, str | None]

ARMS = ("surgery", "conservative")
ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
INTEGER = re.compile(r"-?\d+")
PHI = (
    re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    re.compile(r"\+\d(?:[ -]?\d){7,14}"),
    re.compile(r"\(\d{3}\) \d{3}-\d{4}|\d{3}-\d{3}-\d{4}|\d{3}\.\d{3}\.\d{4}"),
    re.compile(r"\d{10,}"),
    re.compile(r"\d{3}-\d{2}-\d{4}"),
)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def file_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def read_rows(path: Path) -> list[Row]:
    """Every record of a delivered file, values as the text sent (None = empty)."""
    name = path.name
    if name.endswith(".parquet"):
        return [{k: _text(v) for k, v in r.items()} for r in pq.read_table(path).to_pylist()]
    text = file_bytes(path).decode("utf-8-sig")
    if ".jsonl" in name:
        return [{k: _text(v) for k, v in json.loads(line).items()} for line in text.splitlines() if line]
    return [{k: (v if v != "" else None) for k, v in r.items()} for r in csv.DictReader(io.StringIO(text, newline=""))]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def violations(row: Row, folder: str, reference: datetime) -> list[str]:
    """DTS rule names a row breaks on its own (no cross-row rules but the folder and the clock)."""
    out: list[str] = []
    for name in REQUIRED_ENVELOPE:
        if row.get(name) is None:
            out.append("missing_required")
    if out:
        return out
    for name in ("event_id", "patient_id", "target_event_id"):
        value = row.get(name)
        if value is not None and not ID.fullmatch(value):
            out.append("bad_id")
    etype = row["event_type"]
    if etype not in TYPE_FIELDS:
        return [*out, "bad_enum"]
    if row["site_id"] != folder:
        out.append("site_mismatch")
    stamps = {}
    for name in ("occurred_at", "recorded_at"):
        value = row[name] or ""
        if not TIMESTAMP.fullmatch(value):
            out.append("naive_timestamp" if TIMESTAMP.fullmatch(value + "Z") else "bad_type")
        else:
            stamps[name] = instant(value)
    if len(stamps) == 2:
        if stamps["occurred_at"] > stamps["recorded_at"]:
            out.append("occurred_after_recorded")
        if stamps["recorded_at"] > reference:
            out.append("recorded_in_future")
    comment = row.get("comment")
    if comment is not None:
        if len(comment) > 500:
            out.append("comment_too_long")
        if any(p.search(comment) for p in PHI):
            out.append("phi_in_comment")
    allowed = set(TYPE_FIELDS[etype])
    envelope = {f.name for f in ENVELOPE}
    for name, value in row.items():
        if value is None or name in envelope or name not in FIELD_BY_NAME:
            continue
        if name not in allowed:
            out.append("field_not_allowed")
            continue
        out += _value_rule(name, value)
    required = list(TYPE_REQUIRED[etype])
    if etype == "symptom_report" and row.get("paresthesia") not in (None, "none"):
        required.append("paresthesia_extent")
    if etype == "retraction":
        required.append("comment")
    if any(row.get(name) is None for name in required):
        out.append("missing_required")
    if etype == "assessment" and all(row.get(n) is None for n in TYPE_FIELDS["assessment"]):
        out.append("missing_required")
    return out


def _value_rule(name: str, value: str) -> list[str]:
    field = FIELD_BY_NAME[name]
    if field.kind == "int":
        if not INTEGER.fullmatch(value):
            return ["bad_type"]
        low, high = field.low, field.high
        return ["out_of_range"] if (low is not None and int(value) < low) or (high is not None and int(value) > high) \
            else []
    if field.kind == "bool":
        return [] if value in ("true", "false") else ["bad_type"]
    if field.kind == "enum":
        choices = ARMS if name == "arm" else field.choices
        return [] if value in choices else ["bad_enum"]
    if field.kind == "id":
        return [] if ID.fullmatch(value) else ["bad_id"]
    return []
