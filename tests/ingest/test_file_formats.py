"""DTS §2–§3 file formats, as an audit probed them: line endings, offsets, empty values, JSON constants."""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tests.ingest.helpers import Deployment, enrollment, symptom


def _csv(rows: list[dict[str, Any]], newline: str) -> bytes:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    lines = [",".join(columns)] + [",".join(str(r.get(c, "")) for c in columns) for r in rows]
    return (newline.join(lines) + newline).encode()


def _jsonl(*records: dict[str, Any], raw: str = "") -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode() + raw.encode()


def _accepted(dep: Deployment) -> list[str]:
    return [e for (e,) in dep.q("SELECT event_id FROM events ORDER BY event_id")]


def _rejected(dep: Deployment) -> dict[str, list[str]]:
    return {e: rules for e, rules in dep.q("SELECT event_id, rules FROM quarantine WHERE source_row IS NOT NULL")}


def test_a_csv_with_carriage_returns_alone_as_line_ends_is_read(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", _csv([enrollment("E1"), symptom("S1")], "\r"))
    dep.deliver("NL02", "b.csv", [enrollment("F1", site="NL02")])
    dep.ingest()  # it used to crash the run (csv.Error in the header), so NL02 was never read either
    assert _accepted(dep) == ["E1", "F1", "S1"]


def test_an_offset_beyond_the_worlds_clocks_is_bad_type_and_a_real_one_is_read(dep: Deployment) -> None:
    rows = [enrollment("E1"), symptom("S1", occurred="2026-01-05T09:00:00+14:00"),
            symptom("S2", occurred="2026-01-05T09:00:00-12:00")]
    rows += [symptom(f"X{i}", occurred=f"2026-01-05T09:00:00{o}") for i, o in enumerate(["+25:00", "+01:60", "+99:99"])]
    dep.deliver("NL01", "a.csv", rows)
    dep.ingest()
    assert _accepted(dep) == ["E1", "S1", "S2"]
    assert {e: r for e, r in _rejected(dep).items()} == {f"X{i}": ["bad_type"] for i in range(3)}


def test_an_empty_string_in_json_lines_is_no_value_as_an_empty_csv_cell_is(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("S1", comment="")])
    dep.ingest()
    dep.deliver("NL01", "b.jsonl", _jsonl({**symptom("S1"), "comment": ""},
                                          {**symptom("S2"), "arm": "", "target_event_id": ""}))
    (batch,) = dep.ingest().batches
    assert (batch["accepted"], batch["duplicates"], batch["rejected"]) == (1, 1, 0)  # S1 is the same event


def test_json_constants_and_nested_values_in_a_field_are_bad_type(dep: Deployment) -> None:
    nested = {**symptom("S2"), "comment": {"a": [1, 2]}}
    dep.deliver("NL01", "a.jsonl", _jsonl(enrollment("E1"), nested,
                                          raw=json.dumps(symptom("S3"))[:-1] + ', "comment": NaN}\n'))
    dep.ingest()
    assert _accepted(dep) == ["E1"]
    assert _rejected(dep) == {"S2": ["bad_type"], "S3": ["bad_type"]}


def test_an_empty_string_in_parquet_is_no_value(dep: Deployment) -> None:
    buf = io.BytesIO()
    rows = [enrollment("E1"), {**symptom("S1"), "comment": "", "arm": ""}]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    pq.write_table(pa.table({c: [None if r.get(c) is None else str(r[c]) for r in rows] for c in columns}), buf)
    dep.deliver("NL01", "a.parquet", buf.getvalue())
    dep.ingest()
    assert _accepted(dep) == ["E1", "S1"]
    assert dep.q("SELECT comment, arm FROM events WHERE event_id = 'S1'") == [(None, None)]


def test_subfolders_and_links_in_a_site_folder_are_named_as_not_read(dep: Deployment) -> None:
    import os

    from pipeline.ingest.summary import print_summary

    real = dep.deliver("NL01", "a.csv", [enrollment("E1")])
    dep.deliver("NL01", "sub/b.csv", [symptom("S1")])
    os.symlink(real, dep.paths.landing / "NL01" / "link.csv")
    summary = dep.ingest()
    assert summary.not_read == ["NL01/link.csv", "NL01/sub"]
    out = io.StringIO()
    print_summary(summary, out)
    assert "NOT READ: NL01/sub (only files directly in a site folder are read" in out.getvalue()
    assert _accepted(dep) == ["E1"]


def test_a_phone_number_in_arabic_indic_or_fullwidth_digits_is_phi_and_in_progress_names_ignore_case(
        dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1"), symptom("S1", comment="call +٣١٦١٢٣٤٥٦٧٨"),
                                  symptom("S2", comment="tel ０１２３４５６７８９")])
    dep.deliver("NL01", "b.csv.PART", b"event_id,event_type\nS3,sympt")  # still being written: not read
    dep.ingest()
    assert _rejected(dep) == {"S1": ["phi_in_comment"], "S2": ["phi_in_comment"]}
    assert [b for (b,) in dep.q("SELECT source_file FROM batches")] == ["NL01/a.csv"]
