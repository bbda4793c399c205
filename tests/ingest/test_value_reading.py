"""How a delivered value is read: whole values only, the same reading in GX and DuckDB, in every format.

Each test pins a behaviour an audit found broken: a trailing line break that slipped past the GX regex
checks (stored as NULL, no alert), Parquet instants that were always rejected, site columns named like
internal ones, and JSON numbers read as booleans.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.config import Site, Study
from pipeline.ingest.gx_validate import RowChecker
from pipeline.ingest.prepare import prepare
from pipeline.ingest.stage import parameters
from tests.ingest.helpers import Deployment, enrollment, event, symptom


def _quarantined(dep: Deployment) -> dict[str, list[str]]:
    return {e: rules for e, rules in dep.q("SELECT event_id, rules FROM quarantine WHERE source_row IS NOT NULL")}


def _parquet(dep: Deployment, name: str, columns: dict[str, pa.Array]) -> None:
    path = dep.paths.landing / "NL01" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def _envelope(n: int, event_type: str = "symptom_report", prefix: str = "S") -> dict[str, pa.Array]:
    return {"event_id": pa.array([f"{prefix}{i}" for i in range(n)]), "event_type": pa.array([event_type] * n),
            "site_id": pa.array(["NL01"] * n), "patient_id": pa.array(["P1"] * n)}


def _diary(n: int) -> dict[str, pa.Array]:
    return {"leg_pain_nrs": pa.array([5] * n, pa.int32()), "back_pain_nrs": pa.array([3] * n, pa.int32()),
            "pain_extent": pa.array(["calf"] * n), "paresthesia": pa.array(["none"] * n)}


# --- 1. a trailing line break (or a non-ASCII look-alike) is bad_type, never a NULL --------------------------------


def test_a_value_with_a_trailing_line_break_is_rejected_not_stored_as_null(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [
        enrollment("E1"),
        symptom("S1", leg_pain_nrs="5\n"),
        symptom("S2", muscle_spasm="true\n"),
        symptom("S3", occurred="2026-01-05T09:00:00Z\n"),
        symptom("S4\n"),
        symptom("S5", leg_pain_nrs="٥"),  # an Arabic-Indic digit: Python's \d took it, DuckDB did not
        symptom("S6", muscle_spasm="falſe"),  # a long s: Python's case folding took it for "false"
        symptom("S7", muscle_spasm="TRUE"),  # CSV booleans are any case: still accepted
    ])
    summary = dep.ingest()
    assert summary.batches[-1]["accepted"] == 2  # E1 and S7
    assert _quarantined(dep) == {"S1": ["bad_type"], "S2": ["bad_type"], "S3": ["bad_type"], "S4\n": ["bad_id"],
                                 "S5": ["bad_type"], "S6": ["bad_type"]}
    assert dep.q("SELECT event_id, muscle_spasm FROM events WHERE event_type = 'symptom_report'") == [("S7", True)]
    # a type check and its DuckDB-side twin report the same message once
    (messages,) = dep.q("SELECT messages FROM quarantine WHERE event_id = 'S1'")[0]
    assert messages == ["bad_type: leg_pain_nrs '5\\n': not an integer"]


def test_a_rejected_diary_with_a_yes_among_white_space_still_alerts(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [
        enrollment("E1"),
        symptom("S1", bladder_dysfunction="true\n"),
        symptom("S2", saddle_numbness="\t1\r\n"),
        event("F1", "red_flag\n", flag="bowel_dysfunction\n"),
    ])
    summary = dep.ingest()
    assert summary.batches[-1]["accepted"] == 1
    got = dep.q("SELECT event_id, flag, validated FROM alerts ORDER BY event_id")
    assert got == [("F1", "BOWEL", False), ("S1", "BLADDER", False), ("S2", "SADDLE", False)]


def test_the_type_checks_hold_even_without_the_regex_expectations() -> None:
    """Defence in depth: a text DuckDB cannot type is bad_type through `<field>__untyped`, not only the regex."""
    checker = RowChecker()
    for suite in checker.suites.values():
        suite["expectations"] = [e for e in suite["expectations"] if "regex" not in e["type"]]
    rec = {"event_id": "E1", "event_type": "symptom_report", "site_id": "NL01", "patient_id": "P1",
           "occurred_at": "2025-01-02T10:00:00Z\n", "recorded_at": "2025-01-02T11:00:00Z", "leg_pain_nrs": "5\n",
           "muscle_spasm": "yes"}
    chunk = pa.table({**{k: pa.array([v], pa.string()) for k, v in rec.items()},
                      "_row": pa.array([1], pa.int64()), "_raw": pa.array(["{}"], pa.string())})
    frame, typed = prepare(chunk)
    assert typed.column("leg_pain_nrs").to_pylist() == [None]
    study = Study("T", ("surgery", "conservative"), (Site("NL01"),))
    found = checker.check(frame, parameters(study, "NL01", datetime(2026, 1, 1, tzinfo=UTC))).findings[1]
    assert {(f.rule, f.field) for f in found} >= {("bad_type", "occurred_at"), ("bad_type", "leg_pain_nrs"),
                                                   ("bad_type", "muscle_spasm")}


# --- 2. Parquet timestamps -------------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_parquet_instants_are_accepted_to_the_microsecond(dep: Deployment, unit: str) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1")])
    base = datetime(2026, 1, 9, 9, 0, 0, tzinfo=UTC)
    micros = {"s": 0, "ms": 123_000, "us": 123_456, "ns": 123_456}[unit]
    occurred = base.replace(microsecond=micros)
    ts = pa.array([occurred], pa.timestamp("us", tz="UTC")).cast(pa.timestamp(unit, tz="Europe/Amsterdam"))
    _parquet(dep, "b.parquet", {**_envelope(1), "occurred_at": ts, "recorded_at": ts, **_diary(1)})
    summary = dep.ingest()
    assert summary.batches[-1]["accepted"] == 1, dep.q("SELECT messages FROM quarantine")
    assert dep.q("SELECT occurred_at, recorded_at FROM events WHERE event_id = 'S0'") == [(occurred, occurred)]


def test_parquet_timestamps_without_a_time_zone_are_naive(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1")])
    naive = pa.array([datetime(2026, 1, 9, 9, 0)], pa.timestamp("us"))
    aware = pa.array([datetime(2026, 1, 9, 9, 0, tzinfo=UTC)], pa.timestamp("us", tz="UTC"))
    _parquet(dep, "b.parquet", {**_envelope(1), "occurred_at": naive, "recorded_at": aware, **_diary(1)})
    dep.ingest()
    assert _quarantined(dep) == {"S0": ["naive_timestamp"]}


# --- 3. site columns named like internal ones ------------------------------------------------------------------


INTERNAL_LOOKING = {"_row": "x", "_raw": "y", "_malformed": "z", "chunk": "c", "seq": "7", "leg_pain_nrs__num": "99"}


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_a_column_with_an_internal_name_is_just_an_unknown_column(dep: Deployment, fmt: str) -> None:
    rows: list[dict[str, Any]] = [{**enrollment("E1"), **INTERNAL_LOOKING}, {**symptom("S1"), **INTERNAL_LOOKING},
                                  {**symptom("S2", leg_pain_nrs=11), **INTERNAL_LOOKING}]
    dep.deliver("NL01", f"a.{fmt}", rows)
    summary = dep.ingest()
    batch = summary.batches[-1]
    assert (batch["accepted"], batch["rejected"]) == (2, 1)
    assert sorted(batch["unknown_columns"]) == sorted(INTERNAL_LOOKING)
    assert batch["rule_counts"]["unknown_column"] == 1
    assert dep.q("SELECT source_row FROM events ORDER BY source_row") == [(1,), (2,)]
    (rules, raw), = dep.q("SELECT rules, raw FROM quarantine")
    assert rules == ["out_of_range"]
    assert '"_row":' in raw and '"chunk":"c"' in raw.replace(" ", "")  # the record is kept as delivered


def test_validate_reads_a_jsonl_record_with_a_row_key(dep: Deployment) -> None:
    path = dep.root / "draft.jsonl"
    path.write_text('{"event_id": "E1", "event_type": "withdrawal", "site_id": "NL01", "patient_id": "P1", '
                    '"occurred_at": "2026-01-05T09:00:00Z", "recorded_at": "2026-01-05T09:00:00Z", "_row": 5}\n')
    result = CliRunner().invoke(main, ["validate", str(path), "--site", "NL01", "--study", str(dep.paths.study),
                                       "--landing", str(dep.paths.landing), "--warehouse", str(dep.paths.warehouse)])
    assert result.exit_code == 0, result.output
    assert "warning unknown_column: _row" in result.output
    assert "draft.jsonl,1,E1,patient_not_enrolled" in result.output


# --- 4. JSONL booleans are JSON true/false -----------------------------------------------------------------------


def test_a_json_number_is_not_a_boolean_but_a_clear_yes_still_alerts(dep: Deployment) -> None:
    dep.deliver("NL01", "a.jsonl", [enrollment("E1"), symptom("S1", bladder_dysfunction=1),
                                    symptom("S2", muscle_spasm=0), symptom("S3", bowel_dysfunction=True)])
    summary = dep.ingest()
    assert summary.batches[-1]["accepted"] == 2
    assert _quarantined(dep) == {"S1": ["bad_type"], "S2": ["bad_type"]}
    assert dep.q("SELECT event_id, flag, validated FROM alerts ORDER BY event_id") == [
        ("S1", "BLADDER", False), ("S3", "BOWEL", True)]


# --- 5. Parquet floats in integer fields -------------------------------------------------------------------------


def test_a_parquet_float_in_an_integer_field_is_bad_type(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1")])
    ts = pa.array([datetime(2026, 1, 9, 9, 0, tzinfo=UTC)] * 2, pa.timestamp("us", tz="UTC"))
    diary = {**_diary(2), "leg_pain_nrs": pa.array([5.0, 5.5], pa.float64())}
    _parquet(dep, "b.parquet", {**_envelope(2), "occurred_at": ts, "recorded_at": ts, **diary})
    dep.ingest()
    assert _quarantined(dep) == {"S0": ["bad_type"], "S1": ["bad_type"]}
    assert [m for (ms,) in dep.q("SELECT messages FROM quarantine ORDER BY source_row") for m in ms] == [
        "bad_type: leg_pain_nrs '5.0': not an integer", "bad_type: leg_pain_nrs '5.5': not an integer"]


def test_parquet_deliveries_of_natural_types_are_accepted(dep: Deployment) -> None:
    dep.deliver("NL01", "a.csv", [enrollment("E1")])
    ts = pa.array([datetime(2026, 1, 9, 9, 0, tzinfo=UTC)], pa.timestamp("us", tz="UTC"))
    _parquet(dep, "b.parquet", {**_envelope(1), "occurred_at": ts, "recorded_at": ts, **_diary(1),
                                "bladder_dysfunction": pa.array([False])})
    assert dep.ingest().batches[-1]["accepted"] == 1
    assert dep.q("SELECT leg_pain_nrs, bladder_dysfunction FROM events WHERE event_id = 'S0'") == [(5, False)]
