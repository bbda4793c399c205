"""Hostile input: one record the readers cannot handle is rejected on its own, never stopping the ingest; and
PHI e-mail addresses are caught in any script, with the same verdict in every regex engine that may run them.

Each test pins a behaviour an audit found broken: a JSONL line with a lone surrogate escape or nested
100,000 deep crashed every run (nothing committed, no alert for any site); `jan@müller.de` was accepted.
"""

from __future__ import annotations

import decimal
import json
import re
import time
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.ingest.prepare import EMAIL_PATTERN, PHI_RES
from pipeline.ingest.read import _escape_lone_surrogates
from tests.ingest.helpers import Deployment, enrollment, event, symptom

REDACTED = "[redacted by trialpipe: possible PHI]"


def _line(record: dict[str, Any], extra: str = "") -> bytes:
    """One JSONL line: the record, then `extra` (raw JSON text of more members) before the closing brace."""
    text = json.dumps(record)
    return (text[:-1] + (", " + extra if extra else "") + "}\n").encode()


def _jsonl(*lines: bytes) -> bytes:
    return b"".join(lines)


def _quarantine(dep: Deployment) -> dict[str, tuple[list[str], list[str], str]]:
    return {e: (rules, messages, raw) for e, rules, messages, raw in
            dep.q("SELECT event_id, rules, messages, raw FROM quarantine WHERE source_row IS NOT NULL")}


def _accepted(dep: Deployment) -> list[str]:
    return [e for (e,) in dep.q("SELECT event_id FROM events ORDER BY event_id")]


# --- 1. a JSONL line that cannot be read is rejected alone -----------------------------------------------------------


def test_a_jsonl_line_with_a_lone_surrogate_is_rejected_alone_and_kept_escaped(dep: Deployment) -> None:
    bad = _line(symptom("S2", comment="x", bladder_dysfunction=True)).replace(b'"x"', b'"x\\ud800"')
    pair = _line(symptom("S3", comment="ok \U0001f600"))  # json.dumps writes the emoji as a surrogate pair escape
    assert b"\\ud83d\\ude00" in pair
    dep.deliver("NL01", "a.jsonl", _jsonl(_line(enrollment("E1")), _line(symptom("S1")), bad, pair))
    summary = dep.ingest()
    assert (summary.batches[-1]["accepted"], summary.batches[-1]["rejected"]) == (3, 1)
    assert _accepted(dep) == ["E1", "S1", "S3"]
    rules, messages, raw = _quarantine(dep)["S2"]
    assert rules == ["bad_type"] and messages == ["bad_type: (record): malformed record"]
    # the raw line is kept as delivered except that the escape is plain text (a lone surrogate is no character)
    assert raw == bad.decode().rstrip("\n").replace("\\ud800", "\\\\ud800")
    assert json.loads(raw)["comment"] == "x\\ud800"
    # the rejected diary's red flag still alerts, unvalidated
    assert dep.q("SELECT event_id, flag, validated FROM alerts") == [("S2", "BLADDER", False)]
    # a surrogate pair is a character: that line is read as usual
    assert dep.q("SELECT comment FROM events WHERE event_id = 'S3'") == [("ok \U0001f600",)]


def test_lone_surrogate_escapes_are_found_whatever_surrounds_them() -> None:
    assert _escape_lone_surrogates(r'{"a": "x\ud800"}') == r'{"a": "x\\ud800"}'
    assert _escape_lone_surrogates(r'{"a": "\uDC00\uD800"}') == r'{"a": "\\uDC00\\uD800"}'  # reversed pair
    assert _escape_lone_surrogates(r'{"\ud800": "\ud800\ud83d\ude00"}') == r'{"\\ud800": "\\ud800\ud83d\ude00"}'
    for fine in (r'{"a": "\\ud800"}', r'{"a": "\ud83d\ude00 \u00e9"}', r'{"a": "\\\\"}', '{"a": "plain"}'):
        assert _escape_lone_surrogates(fine) == fine  # an escaped backslash, a pair, other escapes: unchanged
    assert _escape_lone_surrogates(r'{"a": "\\\ud800"}') == r'{"a": "\\\\ud800"}'  # backslash, then the escape


def test_a_jsonl_line_nested_too_deeply_is_rejected_alone(dep: Deployment) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    dep.deliver("NL01", "a.jsonl", _jsonl(_line(enrollment("E1")), _line(event("R1", "red_flag", flag="other"),
                                                                          f'"x": {deep}'),
                                          _line(symptom("S1"))))
    summary = dep.ingest()
    batch = summary.batches[-1]
    assert (batch["accepted"], batch["rejected"]) == (2, 1)
    assert batch["unknown_columns"] == ["x"]
    rules, messages, raw = _quarantine(dep)["R1"]  # the event_id is still named on the query list
    assert rules == ["bad_type"] and messages == ["bad_type: (record): malformed record"]
    assert raw.endswith(deep + "}")
    assert dep.q("SELECT event_id, flag, validated FROM alerts") == [("R1", "OTHER", False)]


@pytest.mark.parametrize("extra", ['"x": 1' + "1" * 5000, '"age_years": 1' + "1" * 5000, '"comment": ' + "[" * 5000
                                   + "]" * 5000], ids=["long-number-unknown", "long-number-field", "deep-comment"])
def test_a_jsonl_line_python_cannot_read_is_rejected_alone(dep: Deployment, extra: str) -> None:
    dep.deliver("NL01", "a.jsonl", _jsonl(_line(enrollment("E1")), _line(symptom("S1"), extra), _line(symptom("S2"))))
    summary = dep.ingest()
    assert (summary.batches[-1]["accepted"], summary.batches[-1]["rejected"]) == (2, 1)
    rules, _, raw = _quarantine(dep)["S1"]
    assert "bad_type" in rules
    assert raw == _line(symptom("S1"), extra).decode().rstrip("\n")


def test_a_jsonl_line_that_is_not_json_at_all_is_still_rejected_alone(dep: Deployment) -> None:
    dep.deliver("NL01", "a.jsonl", _jsonl(_line(enrollment("E1")), b'{"event_id": "S9", \n', b"[" * 100_000 + b"\n",
                                          _line(symptom("S1"))))
    summary = dep.ingest()
    assert (summary.batches[-1]["accepted"], summary.batches[-1]["rejected"]) == (2, 2)
    got = dep.q("SELECT source_row, rules FROM quarantine ORDER BY source_row")
    assert [row for row, _ in got] == [2, 3] and all("bad_type" in rules for _, rules in got)


def test_a_hostile_jsonl_line_does_not_stop_the_cli_nor_other_sites_alerts(dep: Deployment) -> None:
    bad = _line(event("W1", "withdrawal", comment="x")).replace(b'"x"', b'"x\\ud800"')
    deep = _line(event("W2", "withdrawal"), '"x": ' + "[" * 100_000 + "]" * 100_000)
    dep.deliver("NL01", "b.jsonl", _jsonl(bad, deep))
    dep.deliver("NL02", "a.csv", [enrollment("E2", site="NL02"), event("RF", "red_flag", site="NL02",
                                                                        flag="saddle_anesthesia")])
    args = ["ingest", "--study", str(dep.paths.study), "--landing", str(dep.paths.landing),
            "--warehouse", str(dep.paths.warehouse)]
    for _ in range(2):  # the rerun finds everything ingested
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    assert dep.q("SELECT site_id, event_id, flag FROM alerts") == [("NL02", "RF", "SADDLE")]
    assert dep.q("SELECT event_id FROM quarantine ORDER BY source_row") == [("W1",), ("W2",)]
    assert dep.q("SELECT count(*) FROM batches") == [(2,)]


# --- 2. Parquet columns DuckDB cannot read --------------------------------------------------------------------------


def test_a_parquet_unknown_column_of_a_type_duckdb_cannot_read_is_kept_as_text(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1")])
    w = event("W1", "withdrawal")
    columns: dict[str, pa.Array] = {k: pa.array([v]) for k, v in w.items()}
    columns["half"] = pa.array([1.5], pa.float16())
    columns["wide_decimal"] = pa.array([decimal.Decimal("1" * 70)], pa.decimal256(76, 0))
    columns["far_future"] = pa.array([10**14], pa.timestamp("s"))  # beyond DuckDB's timestamps
    columns["nested"] = pa.array([{"a": [1, 2]}])
    path = dep.paths.landing / "NL01" / "b.parquet"
    pq.write_table(pa.table(columns), path)
    batch = dep.ingest().batches[-1]
    assert (batch["status"], batch["accepted"]) == ("ingested", 1)
    assert sorted(batch["unknown_columns"]) == ["far_future", "half", "nested", "wide_decimal"]
    assert _accepted(dep) == ["E1", "W1"]


def test_a_parquet_dts_column_arrow_cannot_read_as_text_rejects_the_file(dep: Deployment) -> None:
    w = event("W1", "withdrawal")
    columns: dict[str, pa.Array] = {k: pa.array([v]) for k, v in w.items()}
    columns["comment"] = pa.array([{"a": 1}])
    (dep.paths.landing / "NL01").mkdir(parents=True)
    pq.write_table(pa.table(columns), dep.paths.landing / "NL01" / "b.parquet")
    batch = dep.ingest().batches[-1]
    assert (batch["status"], batch["file_rules"]) == ("rejected", ["unreadable"])


# --- 3. PHI: e-mail addresses in any script -------------------------------------------------------------------------

EMAILS = ["mail jan@müller.de", "jan@bücher.example", "jan@xn--mller-kva.de", "ёжик@пример.рф", "用户@例子.中国",
          "用户@例子。中国", "ユーザー＠例え．テスト", "δοκιμή@παράδειγμα.δοκιμή", "उपयोगकर्ता@उदाहरण.भारत",
          "x@example.xn--p1ai", "«jan.müller+x@klinik-süd.de»", "JAN@EXAMPLE.NL", "a.b@example.co.uk",
          "j@example.museum", "mail: jan@example.com."]
NOT_EMAILS = ["seen @ 3.30pm", "pain@night", "a@b", "jan@ziekenhuis", "x@3.30pm", "2@5.00", "@home.now", "a@b.c",
              "très@bien", "café@5pm", "back pain @ night. better", "pain\u00a0@\u00a0night.now",
              "pain\u202f@\u202fnight.now", "pain\u3000@\u3000night.now", "—@—.——", "x@y.1a", "10:00@ward 3.B"]


def test_internationalised_email_addresses_in_comments_are_phi(dep: Deployment) -> None:
    rows = [enrollment("E1")] + [symptom(f"S{i}", occurred=f"2026-01-05T{i:02d}:00:00Z", comment=c)
                                 for i, c in enumerate(EMAILS)]
    dep.deliver("NL01", "a.jsonl", rows)
    dep.ingest()
    assert _accepted(dep) == ["E1"]
    got = _quarantine(dep)
    assert {e: rules for e, (rules, _, _) in got.items()} == {f"S{i}": ["phi_in_comment"] for i in range(len(EMAILS))}
    for _, messages, raw in got.values():  # the address is not stored, not even in quarantine
        assert json.loads(raw)["comment"] == REDACTED
        assert "@" not in " ".join(messages)


def test_ordinary_comments_with_an_at_sign_are_not_phi(dep: Deployment) -> None:
    rows = [enrollment("E1")] + [symptom(f"S{i}", occurred=f"2026-01-05T{i:02d}:00:00Z", comment=c)
                                 for i, c in enumerate(NOT_EMAILS)]
    dep.deliver("NL01", "a.csv", rows)
    dep.ingest()
    assert _quarantine(dep) == {}
    assert sorted(c for (c,) in dep.q("SELECT comment FROM events WHERE comment IS NOT NULL")) == sorted(NOT_EMAILS)


def test_the_phi_patterns_read_alike_in_python_re_arrow_re2_and_duckdb() -> None:
    """pandas runs GX's regex on a string column with Arrow's RE2 or with Python re (depending on the pattern
    and the data), and DuckDB has RE2: the e-mail pattern uses nothing they read differently."""
    assert not re.search(r"\\[wWdDsSbBpPuUN]", EMAIL_PATTERN), "no class or escape the engines read differently"
    texts = EMAILS + NOT_EMAILS + ["", "plain text", "é" * 300 + "@" + "ü" * 300 + ".de"]
    con = duckdb.connect()
    for text in texts:
        py = re.search(EMAIL_PATTERN, text) is not None
        arrow = pc.match_substring_regex(pa.array([text]), EMAIL_PATTERN)[0].as_py()
        (duck,) = con.execute("SELECT regexp_matches(?, ?)", [text, EMAIL_PATTERN]).fetchone() or (None,)
        assert py == arrow == duck == (text in EMAILS or "@" + "ü" in text), text
    assert EMAIL_PATTERN in PHI_RES


def test_the_email_check_stays_fast_on_a_long_comment() -> None:
    """Python's backtracking search was quadratic on a long run of name characters (10 s at 100,000)."""
    for text in ("a" * 100_000, "x@" + "a." * 50_000, "é" * 100_000):
        start = time.perf_counter()
        assert re.search(EMAIL_PATTERN, text) is None
        assert time.perf_counter() - start < 2.0


def test_a_jsonl_line_naming_a_field_twice_is_rejected_and_a_true_in_any_copy_alerts(dep: Deployment) -> None:
    twice = _line(symptom("S2", bladder_dysfunction=False), '"bladder_dysfunction": true')
    dep.deliver("NL01", "a.jsonl", _jsonl(_line(enrollment("E1")), twice))
    dep.ingest()
    rules, messages, _ = _quarantine(dep)["S2"]
    assert rules == ["bad_type"] and messages == ["bad_type: (record): malformed record"]
    assert dep.q("SELECT event_id, flag, validated FROM alerts") == [("S2", "BLADDER", False)]
