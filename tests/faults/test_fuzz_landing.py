"""Random and mutated site files in the landing zone: ingest never crashes, and every file is
accounted for (received = accepted + rejected + duplicates, or rejected whole with a rule).

A time-bounded hypothesis run: a handful of examples of up to five files each, every example a
fresh deployment ingested in this process (the GX context is built once).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.ingest.discover import is_in_progress
from pipeline.store.audit import verify
from tests.ingest.helpers import enrollment, event, make_deployment, symptom

pytestmark = pytest.mark.slow

EXTENSIONS = (".csv", ".jsonl", ".parquet", ".csv.gz", ".jsonl.gz", ".CSV", ".txt", "", ".parquet.gz", ".tmp")
FOLDERS = ("NL01", "NL02", "XX99", "ünï cøde", "a b")
WEIRD = st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=True), st.booleans(), st.none(),
                  st.text(max_size=30), st.just("=cmd|' /C calc'!A0"), st.just("x" * 200_000),
                  st.just("2026-13-45T99:00:00"), st.just("\ufeff\u202e\x00"))


@st.composite
def records(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Plausible events of the DTS, some of them mutated: a field dropped, changed or added."""
    site = draw(st.sampled_from(("NL01", "NL02", "ZZ")))
    rows: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(("enrollment", "symptom", "red_flag")))
        eid = draw(st.sampled_from((f"F{i}", "F0", "", "E" * 300)))
        if kind == "enrollment":
            row = enrollment(eid, patient=draw(st.sampled_from(("P1", "P2"))), site=site)
        elif kind == "symptom":
            row = symptom(eid, patient=draw(st.sampled_from(("P1", "P2"))), site=site)
        else:
            row = event(eid, "red_flag", patient="P1", site=site, flag="bladder_dysfunction")
        for _ in range(draw(st.integers(0, 2))):
            key = draw(st.sampled_from([*row, "comment", "extra_col"]))
            if draw(st.booleans()):
                row.pop(key, None)
            else:
                row[key] = draw(WEIRD)
        rows.append(row)
    return rows


def _text(rows: list[dict[str, Any]], fmt: str) -> bytes:
    if fmt == "jsonl":
        return "".join(json.dumps(r, default=str) + "\n" for r in rows).encode()
    out = io.StringIO()
    keys = sorted({k for r in rows for k in r}) or ["event_id"]
    writer = csv.DictWriter(out, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    keys = sorted({k for r in rows for k in r}) or ["event_id"]
    table = pa.table({k: pa.array([None if r.get(k) is None else str(r.get(k)) for r in rows], pa.string())
                      for k in keys})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


@st.composite
def site_file(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """(folder, name, bytes): a serialised delivery, possibly compressed, re-encoded, truncated or noise."""
    rows = draw(records())
    ext = draw(st.sampled_from(EXTENSIONS))
    body = _parquet(rows) if ".parquet" in ext else _text(rows, "jsonl" if "jsonl" in ext else "csv")
    mutation = draw(st.sampled_from(("none", "none", "truncate", "flip", "latin1", "utf16", "noise", "empty")))
    if mutation == "truncate":
        body = body[: draw(st.integers(0, max(0, len(body) - 1)))]
    elif mutation == "flip" and body:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([body[at] ^ 0xFF]) + body[at + 1:]
    elif mutation in ("latin1", "utf16"):
        body = body.decode("utf-8", "replace").replace("e", "\xe9").encode("latin-1" if mutation == "latin1"
                                                                           else "utf-16", "replace")
    elif mutation == "noise":
        body = draw(st.binary(max_size=2000))
    elif mutation == "empty":
        body = b""
    if ext.endswith(".gz") and draw(st.booleans()):
        body = gzip.compress(body)
    stem = draw(st.one_of(
        st.sampled_from(("delivery", "week 1 (final)", "..x", "-rf", "ünïcode", "a" * 200, "$(touch pwned)", "🩺")),
        st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1, max_size=20),
    ))
    name = (stem + ext).encode("utf-8")[:250].decode("utf-8", "ignore")
    if name in ("", ".", ".."):
        name = "x.csv"
    return draw(st.sampled_from(FOLDERS)), name, body


@settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(files=st.lists(site_file(), min_size=1, max_size=5))
def test_random_landing_files_never_crash_ingest_and_every_file_is_accounted_for(
        files: list[tuple[str, str, bytes]]) -> None:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        dep = make_deployment(Path(tmp) / "study")
        delivered: dict[str, bytes] = {}
        for folder, name, body in files:
            dep.deliver(folder, name, body)
            delivered[f"{folder}/{name}"] = body
        summary = dep.ingest()  # must not raise

        records = {b["source_file"]: b for b in summary.batches}
        for relpath in delivered:
            if is_in_progress(relpath.rsplit("/", 1)[1]):
                assert relpath not in records, f"{relpath} is still being written: it waits"
                continue
            assert relpath in records, f"{relpath} was not accounted for"
            b = records[relpath]
            assert b["status"] in ("ingested", "rejected", "file_duplicate"), b
            if b["status"] == "rejected":
                assert b["file_rules"], f"{relpath} rejected whole without a rule"
            else:
                assert b["received"] == b["accepted"] + b["rejected"] + b["duplicates"], b
        assert len(records) == len(summary.batches), "one ledger record per file"
        ledger = dep.q("SELECT source_file, status, received, accepted, rejected, duplicates FROM batches")
        assert len(ledger) == len(summary.batches)
        (events,) = dep.q("SELECT count(*) FROM events")
        assert events[0] == sum(int(b["accepted"] or 0) for b in summary.batches)
        (quarantined,) = dep.q("SELECT count(*) FROM quarantine WHERE source_row IS NOT NULL")
        assert quarantined[0] == sum(int(b["rejected"] or 0) for b in summary.batches if b["status"] == "ingested")
        assert verify(dep.paths).ok
