"""The Great Expectations suites of the per-row DTS checks, built from the schema.

The suites are checked into `expectations/<name>.json` (what a reviewer reads
and what the pipeline runs); `python -m pipeline.ingest.suites` rewrites them
after a schema change, and a test fails when the files and the schema drift.
Each expectation carries `meta.rule` (a DTS §5 rule name) and `meta.field`.
Study-specific values are suite parameters: `arms`, `site_id_set` (the
folder's site), `latest_recorded_epoch` (now + clock skew), `late_entry_days`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from pipeline.ingest.prepare import ANY_TS_RE, BOOL_RE, ID_RE, INT_RE, NAIVE_TS_RE, PHI_RES
from pipeline.rules import EXPECTATIONS_DIR
from pipeline.schema import EVENT_TYPES, PAYLOAD, REQUIRED_ENVELOPE, TYPE_FIELDS, TYPE_REQUIRED

TYPE_SUITES = EVENT_TYPES  # one suite per event type, validated on the rows of that type
SUITE_NAMES = ("envelope", "payload_values", *TYPE_SUITES)
Exp = dict[str, Any]


def _exp(kind: str, rule: str, field: str, detail: str = "", **kwargs: Any) -> Exp:
    """One expectation; no row conditions (see DERIVED), so both GX engines run it alike."""
    return {"type": kind, "kwargs": dict(kwargs), "meta": {"rule": rule, "field": field, "detail": detail}}


def _untyped_check(rule: str, field: str, detail: str) -> Exp:
    """The DuckDB-side twin of a type check (prepare.py `<field>__untyped`): same rule, field and message."""
    return _exp("expect_column_values_to_be_null", rule, field, detail, column=f"{field}__untyped")


# Conditions folded into columns of the suite's view (GX's SQL engine keeps a row_condition in its counts but
# drops it from `unexpected_index_query`, the query that names the failing rows): each column is NULL where
# the condition does not hold, so the expectation on it sees only the rows the condition selects. Both GX
# engines validate the rows of the same view, with these columns computed by DuckDB.
DERIVED: dict[str, dict[str, str]] = {
    "envelope": {
        **{f"{c}__not_instant": f"CASE WHEN {c}__offset AND {c}__epoch IS NULL THEN {c} END"
           for c in ("occurred_at", "recorded_at")},  # has an offset, yet is no valid instant
        "_entry_lag_days": "CASE WHEN event_type IN ('correction', 'retraction') THEN NULL ELSE _lag_days END",
    },
    "symptom_report": {
        "_paresthesia_extent_missing": ("CASE WHEN paresthesia IN ('tingling', 'numbness') "
                                        "AND paresthesia_extent IS NULL THEN paresthesia END"),
    },
}


def envelope() -> list[Exp]:
    e = [_exp("expect_column_values_to_not_be_null", "missing_required", c, "required", column=c)
         for c in REQUIRED_ENVELOPE]
    e += [_exp("expect_column_values_to_match_regex", "bad_id", c, "1-64 of [A-Za-z0-9_-]", column=c, regex=ID_RE)
          for c in ("event_id", "patient_id")]
    e.append(_exp("expect_column_values_to_be_in_set", "bad_enum", "event_type", "one of " + ", ".join(EVENT_TYPES),
                  column="event_type", value_set=list(EVENT_TYPES)))
    e.append(_exp("expect_column_values_to_be_in_set", "site_mismatch", "site_id", "must equal the landing folder",
                  column="site_id", value_set={"$PARAMETER": "site_id_set"}))
    for c in ("occurred_at", "recorded_at"):
        e.append(_exp("expect_column_values_to_not_match_regex", "naive_timestamp", c, "needs Z or ±hh:mm",
                      column=c, regex=NAIVE_TS_RE))
        e.append(_exp("expect_column_values_to_match_regex", "bad_type", c, "not an ISO-8601 timestamp",
                      column=c, regex=ANY_TS_RE))
        e.append(_untyped_check("bad_type", c, "not an ISO-8601 timestamp"))
        e.append(_exp("expect_column_values_to_be_null", "bad_type", c, "not a valid date and time",
                      column=f"{c}__not_instant"))
    e.append(_exp("expect_column_pair_values_a_to_be_greater_than_b", "occurred_after_recorded", "occurred_at",
                  "occurred_at is after recorded_at", column_A="recorded_at__epoch", column_B="occurred_at__epoch",
                  or_equal=True, ignore_row_if="either_value_is_missing"))
    e.append(_exp("expect_column_values_to_be_between", "recorded_in_future", "recorded_at", "in the future",
                  column="recorded_at__epoch", max_value={"$PARAMETER": "latest_recorded_epoch"}))
    e.append(_exp("expect_column_value_lengths_to_be_between", "comment_too_long", "comment",
                  "more than 500 characters", column="comment", max_value=500))
    e.append(_exp("expect_column_values_to_not_match_regex_list", "phi_in_comment", "comment",
                  "looks like an e-mail address, phone number or SSN", column="comment", regex_list=list(PHI_RES)))
    e.append(_exp("expect_column_values_to_be_between", "late_entry", "recorded_at",
                  "recorded more than late_entry_days after it occurred",
                  column="_entry_lag_days", max_value={"$PARAMETER": "late_entry_days"}))
    e.append(_exp("expect_column_values_to_be_null", "bad_type", "(record)", "malformed record", column="_malformed"))
    return e


def payload_values() -> list[Exp]:
    e: list[Exp] = []
    for f in PAYLOAD:
        if f.kind == "int":
            e.append(_exp("expect_column_values_to_match_regex", "bad_type", f.name, "not an integer",
                          column=f.name, regex=INT_RE))
            e.append(_untyped_check("bad_type", f.name, "not an integer"))
            e.append(_exp("expect_column_values_to_be_between", "out_of_range", f.name, f"outside {f.low}–{f.high}",
                          column=f"{f.name}__num", min_value=f.low, max_value=f.high))
        elif f.kind == "bool":
            e.append(_exp("expect_column_values_to_match_regex", "bad_type", f.name, "not a boolean (true/false)",
                          column=f.name, regex=BOOL_RE))
            e.append(_untyped_check("bad_type", f.name, "not a boolean (true/false)"))
        elif f.kind == "enum":
            value_set: Any = {"$PARAMETER": "arms"} if f.name == "arm" else list(f.choices)
            detail = "not one of the study's arms" if f.name == "arm" else "one of " + ", ".join(f.choices)
            e.append(_exp("expect_column_values_to_be_in_set", "bad_enum", f.name, detail,
                          column=f.name, value_set=value_set))
        elif f.kind == "id":
            e.append(_exp("expect_column_values_to_match_regex", "bad_id", f.name, "1-64 of [A-Za-z0-9_-]",
                          column=f.name, regex=ID_RE))
    return e


def event_type_suite(t: str) -> list[Exp]:
    """Required and allowed fields of one event type, validated on that type's rows only."""
    e = [_exp("expect_column_values_to_not_be_null", "missing_required", c, f"required for {t}", column=c)
         for c in TYPE_REQUIRED[t]]
    if t == "symptom_report":
        e.append(_exp("expect_column_values_to_be_null", "missing_required", "paresthesia_extent",
                      "required when paresthesia is not none", column="_paresthesia_extent_missing"))
    if t == "assessment":
        e.append(_exp("expect_column_values_to_be_between", "missing_required", "(assessment)",
                      "an assessment needs at least one measurement", column="_n_assessment", min_value=1))
    for f in PAYLOAD:
        if f.name not in TYPE_FIELDS[t]:
            e.append(_exp("expect_column_values_to_be_null", "field_not_allowed", f.name,
                          f"not a field of a {t} event", column=f.name))
    return e


BUILDERS: dict[str, Callable[[], list[Exp]]] = {
    "envelope": envelope, "payload_values": payload_values,
    **{t: (lambda t=t: event_type_suite(t)) for t in TYPE_SUITES},  # type: ignore[misc]
}


def suite_dict(name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"generated_from": "pipeline/schema.py"}
    if name in DERIVED:
        meta["derived_columns"] = DERIVED[name]
    return {"name": name, "expectations": BUILDERS[name](), "meta": meta}


def load_suite_dict(name: str) -> dict[str, Any]:
    with open(EXPECTATIONS_DIR / f"{name}.json", encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def _visible(text: str) -> str:
    """JSON text with \\u escapes for characters that do not print or lie beyond General Punctuation.

    A reviewer then sees the code points of the PHI pattern's character classes (spaces, CJK and
    fullwidth punctuation) while details such as "outside 0–10" stay as they read.
    """
    return "".join(c if c == "\n" or (c.isprintable() and ord(c) <= 0x206F) else json.dumps(c)[1:-1] for c in text)


def write_suites() -> None:
    for name in SUITE_NAMES:
        text = json.dumps(suite_dict(name), indent=2, ensure_ascii=False) + "\n"
        (EXPECTATIONS_DIR / f"{name}.json").write_text(_visible(text), encoding="utf-8")



if __name__ == "__main__":
    write_suites()
    sys.stdout.write("wrote " + ", ".join(f"expectations/{n}.json" for n in SUITE_NAMES) + "\n")
