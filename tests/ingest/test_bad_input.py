"""Every bad delivery of DTS §5 has a fixture: the message names file, row, field and rule; nothing is lost."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.ingest.helpers import make_deployment

DATA = Path(__file__).resolve().parent.parent / "data"
CASES = sorted(p for p in (DATA / "bad_input").iterdir() if not p.name.endswith(".expect.json"))


def _expect(case: Path) -> dict[str, Any]:
    stem = case.name.split(".")[0]
    data: dict[str, Any] = json.loads((case.parent / f"{stem}.expect.json").read_text())
    return data


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_delivery_is_quarantined_with_named_rule(tmp_path: Path, case: Path) -> None:
    expect = _expect(case)
    dep = make_deployment(tmp_path / "s", expect.get("study", ""))
    shutil.copy(DATA / "base" / "enrollments.csv", dep.deliver("NL01", "0_enrollments.csv", b""))
    dep.deliver(expect["site"], case.name, case.read_bytes())
    summary = dep.ingest()
    batch = next(b for b in summary.batches if b["source_file"].endswith(case.name))

    if "file_rule" in expect:
        assert batch["status"] == "rejected"
        assert batch["file_rules"] == [expect["file_rule"]]
        (row,) = dep.q(f"SELECT source_row, rules, messages, raw FROM quarantine "
                       f"WHERE source_file LIKE '%{case.name}'")
        assert row[0] is None and row[1] == [expect["file_rule"]]
        kept = dep.paths.warehouse / json.loads(row[3])["kept_file"]
        assert kept.read_bytes() == case.read_bytes(), "the rejected file is kept in quarantine, byte for byte"
        assert dep.q(f"SELECT count(*) FROM events WHERE source_file LIKE '%{case.name}'") == [(0,)]
        return

    got = dep.q(f"SELECT source_row, rules, messages FROM quarantine WHERE source_file LIKE '%{case.name}'")
    by_row = {r[0]: (r[1], r[2]) for r in got}
    for record, rule, field in expect["rows"]:
        rules, messages = by_row[record]
        assert rule in rules, f"record {record}: {rule} not in {rules}"
        msg = next(m for m in messages if m.startswith(rule + ":"))
        if field:
            assert field in msg, f"the message names the field: {msg}"
    assert set(by_row) == {r[0] for r in expect["rows"]}, "no other row is rejected"
    assert batch["accepted"] == expect["accepted"]
    assert batch["duplicates"] == expect.get("duplicates", 0)
    # conservation: received = accepted + rejected + duplicates
    assert batch["received"] == batch["accepted"] + batch["rejected"] + batch["duplicates"]
    for rule, n in expect.get("warnings", {}).items():
        assert batch["rule_counts"].get(rule) == n


def test_query_list_names_file_record_rule_and_message(tmp_path: Path) -> None:
    dep = make_deployment(tmp_path / "s")
    shutil.copy(DATA / "base" / "enrollments.csv", dep.deliver("NL01", "0_enrollments.csv", b""))
    shutil.copy(DATA / "bad_input" / "out_of_range.csv", dep.deliver("NL01", "week2.csv", b""))
    shutil.copy(DATA / "bad_input" / "not_utf8.csv", dep.deliver("NL01", "week3.csv", b""))
    dep.ingest()
    text = (dep.paths.queries_dir / "NL01" / "query_list.csv").read_text()
    lines = text.splitlines()
    assert lines[0] == "file,record,event_id,rule,message"
    assert lines[1].startswith("NL01/week3.csv,,,not_utf8,"), "files rejected whole head the list"
    assert any(line.startswith("NL01/week2.csv,1,E1,out_of_range,leg_pain_nrs '11'") for line in lines)
    html = (dep.paths.queries_dir / "NL01" / "query_list.html").read_text()
    assert "week2.csv" in html and "<script" not in html


def test_phi_comment_is_redacted_in_quarantine(tmp_path: Path) -> None:
    dep = make_deployment(tmp_path / "s")
    shutil.copy(DATA / "base" / "enrollments.csv", dep.deliver("NL01", "0_enrollments.csv", b""))
    shutil.copy(DATA / "bad_input" / "phi_in_comment.csv", dep.deliver("NL01", "x.csv", b""))
    dep.ingest()
    raws = [r[0] for r in dep.q("SELECT raw || array_to_string(messages, ' ') FROM quarantine")]
    assert raws and not any("jan@example.org" in r or "1234 5678" in r or "123-45-6789" in r for r in raws)
