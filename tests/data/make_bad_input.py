"""Regenerate tests/data/bad_input/: one fixture per bad delivery a site could make.

Each case is a delivered file `<case>.<ext>` and `<case>.expect.json`: the
folder it is delivered to and what the ingest must do with it (the rule per
record, or the rule of a file rejected whole). Every case is delivered after
tests/data/base/enrollments.csv (patients P1, P2 at NL01 and P5 at NL02).
Run: uv run python tests/data/make_bad_input.py
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from pipeline.simulate.writers import write_events
from tests.ingest.helpers import enrollment, event, symptom

HERE = Path(__file__).resolve().parent
OUT = HERE / "bad_input"


def ok(eid: str, **kw: Any) -> dict[str, Any]:
    return symptom(eid, occurred="2026-01-05T09:00:00Z", **kw)


# case -> (rows or bytes, file extension, expectation)
CASES: dict[str, tuple[Any, str, dict[str, Any]]] = {
    "missing_required": ([ok("E1"), ok("E2", leg_pain_nrs=None)], "csv",
                         {"rows": [[2, "missing_required", "leg_pain_nrs"]], "accepted": 1}),
    "bad_type": ([ok("E1", leg_pain_nrs="five"), ok("E2")], "csv",
                 {"rows": [[1, "bad_type", "leg_pain_nrs"]], "accepted": 1}),
    "bad_type_bool_string_in_jsonl": ([ok("E1", muscle_spasm="true")], "jsonl",
                                      {"rows": [[1, "bad_type", "muscle_spasm"]], "accepted": 0}),
    "out_of_range": ([ok("E1", leg_pain_nrs=11), ok("E2", walking_tolerance_min=721)], "csv",
                     {"rows": [[1, "out_of_range", "leg_pain_nrs"], [2, "out_of_range", "walking_tolerance_min"]],
                      "accepted": 0}),
    "bad_enum": ([ok("E1", pain_extent="ankle"), event("E2", "treatment", modality="acupuncture")], "csv",
                 {"rows": [[1, "bad_enum", "pain_extent"], [2, "bad_enum", "modality"]], "accepted": 0}),
    "bad_id": ([ok("E 1"), ok("E2", patient="P1;DROP")], "jsonl",
               {"rows": [[1, "bad_id", "event_id"], [2, "bad_id", "patient_id"]], "accepted": 0}),
    "naive_timestamp": ([symptom("E1", occurred="2026-01-05T09:00:00"), ok("E2")], "csv",
                        {"rows": [[1, "naive_timestamp", "occurred_at"]], "accepted": 1}),
    "field_not_allowed": ([ok("E1", arm="surgery"), event("E2", "withdrawal", leg_pain_nrs=3)], "csv",
                          {"rows": [[1, "field_not_allowed", "arm"], [2, "field_not_allowed", "leg_pain_nrs"]],
                           "accepted": 0}),
    "comment_too_long": ([ok("E1", comment="x" * 501), ok("E2", comment="y" * 500)], "csv",
                         {"rows": [[1, "comment_too_long", "comment"]], "accepted": 1}),
    "phi_in_comment": ([ok("E1", comment="mail jan@example.org"), ok("E2", comment="call +31 6 1234 5678"),
                        ok("E3", comment="ssn 123-45-6789"), ok("E4", comment="tel (555) 123-4567"),
                        ok("E5", comment="seen 2026-01-05 10:30, better")], "csv",
                       {"rows": [[1, "phi_in_comment", "comment"], [2, "phi_in_comment", "comment"],
                                 [3, "phi_in_comment", "comment"], [4, "phi_in_comment", "comment"]],
                        "accepted": 1}),
    "site_mismatch": ([ok("E1"), symptom("E2", site="NL02", patient="P5")], "csv",
                      {"rows": [[2, "site_mismatch", "site_id"]], "accepted": 1}),
    "patient_not_enrolled": ([ok("E1", patient="P99")], "csv",
                             {"rows": [[1, "patient_not_enrolled", None]], "accepted": 0}),
    "duplicate_enrollment": ([enrollment("E1", patient="P1")], "csv",
                             {"rows": [[1, "duplicate_enrollment", None]], "accepted": 0}),
    "occurred_after_recorded": ([symptom("E1", occurred="2026-01-05T09:00:00Z", recorded="2026-01-04T09:00:00Z")],
                                "csv", {"rows": [[1, "occurred_after_recorded", "occurred_at"]], "accepted": 0}),
    "recorded_in_future": ([symptom("E1", occurred="2026-01-05T09:00:00Z", recorded="2099-01-01T00:00:00Z")],
                           "csv", {"rows": [[1, "recorded_in_future", "recorded_at"]], "accepted": 0}),
    "target_unknown": ([event("E1", "retraction", target_event_id="NOPE", comment="wrong patient")], "csv",
                       {"rows": [[1, "target_unknown", None]], "accepted": 0}),
    "target_other_patient": ([ok("E1"), event("E2", "retraction", patient="P2", target_event_id="E1",
                                              comment="mistake")], "csv",
                             {"rows": [[2, "target_other_patient", None]], "accepted": 1}),
    "event_id_conflict": ([ok("E1", leg_pain_nrs=4), ok("E1", leg_pain_nrs=6)], "csv",
                          {"rows": [[2, "event_id_conflict", None]], "accepted": 1}),
    "duplicate": ([ok("E1"), ok("E1"), symptom("E1", occurred="2026-01-05T10:00:00+01:00")], "jsonl",
                  {"rows": [], "accepted": 1, "duplicates": 2}),
    "malformed_jsonl_line": ((json.dumps(ok("E1")) + '\n{"event_id": "E2", \n').encode(), "jsonl",
                             {"rows": [[2, "bad_type", "(record)"]], "accepted": 1}),
    "every_rule_listed": ([symptom("E 9", patient="P99", occurred="2026-01-05T09:00:00", leg_pain_nrs=12,
                                   pain_extent="ankle")], "csv",
                          {"rows": [[1, "bad_id", "event_id"], [1, "naive_timestamp", "occurred_at"],
                                    [1, "out_of_range", "leg_pain_nrs"], [1, "bad_enum", "pain_extent"],
                                    [1, "patient_not_enrolled", None]], "accepted": 0}),
    "late_entry_warning": ([symptom("E1", occurred="2026-01-05T09:00:00Z", recorded="2026-01-20T09:00:00Z")], "csv",
                           {"rows": [], "accepted": 1, "warnings": {"late_entry": 1}}),
    "pain_jump_warning": ([ok("E1", leg_pain_nrs=1), symptom("E2", occurred="2026-01-05T20:00:00Z", leg_pain_nrs=8)],
                          "csv", {"rows": [], "accepted": 2, "warnings": {"pain_jump": 1}}),
    "after_withdrawal_warning": ([event("E1", "withdrawal", occurred="2026-01-04T09:00:00Z"), ok("E2")], "csv",
                                 {"rows": [], "accepted": 2, "warnings": {"after_withdrawal": 1}}),
    "unknown_column_warning": ([ok("E1", favourite_colour="blue")], "csv",
                               {"rows": [], "accepted": 1, "warnings": {"unknown_column": 1}}),
    # files rejected whole
    "corrupt_gzip": (gzip.compress(b"event_id,event_type\n")[:-12] + b"garbage!", "csv.gz",
                     {"file_rule": "unreadable"}),
    "truncated_parquet": (b"PAR1\x00\x00garbage", "parquet", {"file_rule": "unreadable"}),
    "unknown_format": (b"PK\x03\x04 not really a spreadsheet", "xlsx", {"file_rule": "unreadable"}),
    "not_utf8": ("event_id,event_type,site_id,patient_id,occurred_at,recorded_at,comment\n"
                 "E1,symptom_report,NL01,P1,2026-01-05T09:00:00Z,2026-01-05T09:00:00Z,Müller\n".encode("latin-1"),
                 "csv", {"file_rule": "not_utf8"}),
    "missing_column": (b"event_type,site_id,patient_id,occurred_at,recorded_at\n"
                       b"symptom_report,NL01,P1,2026-01-05T09:00:00Z,2026-01-05T09:00:00Z\n", "csv",
                       {"file_rule": "missing_column"}),
    "ragged_csv_row": (b"event_id,event_type,site_id,patient_id,occurred_at,recorded_at\n"
                       b"E1,withdrawal,NL01,P1,2026-01-05T09:00:00Z,2026-01-05T09:00:00Z,extra,cells\n", "csv",
                       {"file_rule": "unreadable"}),
    "unregistered_site": ([ok("E1", site="XX99")], "csv", {"site": "XX99", "file_rule": "unregistered_site"}),
    "file_too_large": ([ok(f"E{i}") for i in range(40)], "csv",
                       {"file_rule": "file_too_large", "study": "max_file_bytes = 1000"}),
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    write_events([enrollment("B1", "P1"), enrollment("B2", "P2", arm="conservative"),
                  enrollment("B5", "P5", site="NL02")], HERE / "base" / "enrollments.csv")
    for case, (content, ext, expect) in CASES.items():
        path = OUT / f"{case}.{ext}"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            write_events(content, path)
        expect.setdefault("site", "NL01")
        (OUT / f"{case}.expect.json").write_text(json.dumps(expect, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
