"""simulate_study: the study configuration, the landing zone, DTS-valid clean data and the recorded faults."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

import pytest

from pipeline.config import load_study
from pipeline.schema import TYPE_FIELDS
from pipeline.simulate import FORMATS, SimulationOptions, SimulationResult, simulate_study
from tests.simulate.dts import instant, read_rows, violations

REFERENCE = instant(SimulationOptions().reference_time)
FILE_RULES = {"file_duplicate", "unreadable", "not_utf8", "missing_column", "unknown_column", "unregistered_site"}
ROW_RULES = {"duplicate", "event_id_conflict", "out_of_range", "bad_enum", "bad_type", "naive_timestamp",
             "missing_required", "site_mismatch", "patient_not_enrolled", "target_unknown", "phi_in_comment",
             "comment_too_long", "bad_id", "field_not_allowed", "occurred_after_recorded", "duplicate_enrollment",
             "target_other_patient"}


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def delivered_rows(result: SimulationResult) -> dict[Path, list[dict[str, str | None]]]:
    """Rows of every readable delivery of a registered site."""
    skip = {r.path for r in result.faults if r.rule in FILE_RULES - {"unknown_column"}}
    return {p: read_rows(p) for p in result.files if p not in skip}


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    options = SimulationOptions(seed=5, n_patients=12, weeks=8)
    simulate_study(tmp_path / "a" / "landing", tmp_path / "a" / "study.toml", options)
    simulate_study(tmp_path / "b" / "landing", tmp_path / "b" / "study.toml", options)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    simulate_study(tmp_path / "c" / "landing", tmp_path / "c" / "study.toml", SimulationOptions(seed=6, n_patients=12,
                                                                                                weeks=8))
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_study_configuration_registers_the_sites(faulty: SimulationResult) -> None:
    study = load_study(faulty.study_path)
    assert study.study_id == "SCIATICA-01"
    assert study.arms == ("surgery", "conservative")
    assert study.site_ids == ("NL01", "NL02", "NL03") == faulty.sites


def test_deliveries_cycle_through_the_formats_and_are_named_by_date(clean: SimulationResult) -> None:
    names = [p.relative_to(clean.landing).as_posix() for p in clean.files]
    assert len(names) == 3 * 4
    fmts = [n.split(".", 1)[1] for n in names]
    assert fmts == [FORMATS[i % len(FORMATS)] for i in range(len(names))]
    assert all(re.fullmatch(r"NL0[123]/\d{4}-\d{2}-\d{2}_delivery\.[a-z.]+", n) for n in names)
    for site in ("NL01", "NL02", "NL03"):
        dates = [n for n in names if n.startswith(site)]
        assert dates == sorted(dates) and len(set(d[:15] for d in dates)) == 4


def test_clean_rows_satisfy_every_dts_field_rule(clean: SimulationResult) -> None:
    rows = delivered_rows(clean)
    assert sum(len(r) for r in rows.values()) == clean.n_events
    bad = [(p.name, r["event_id"], v) for p, rs in rows.items() for r in rs
           if (v := violations(r, p.parent.name, REFERENCE))]
    assert bad == []


def test_clean_rows_keep_the_cross_row_rules(clean: SimulationResult) -> None:
    seen: dict[str, dict[str, str | None]] = {}
    enrolled: set[str] = set()
    for path, rows in delivered_rows(clean).items():
        for r in rows:
            assert r["event_id"] not in seen, "event ids are unique"
            assert r["patient_id"] and re.fullmatch(rf"{path.parent.name}-P\d{{4}}", r["patient_id"])
            if r["event_type"] == "enrollment":
                assert r["patient_id"] not in enrolled
                enrolled.add(r["patient_id"])
            target = r["target_event_id"]
            if target is not None:  # corrections and retractions follow their target, of the same patient
                assert target in seen and seen[target]["patient_id"] == r["patient_id"]
                assert seen[target]["event_type"] in ("enrollment", "symptom_report", "assessment", "treatment")
            if r["event_type"] == "correction":  # the full payload of the target's type, nothing else
                assert target is not None
                original = seen[target]
                fields = TYPE_FIELDS[original["event_type"] or ""]
                assert all(r[n] is None for n in TYPE_FIELDS["correction"][1:] if n not in fields)
                assert all(r[n] is not None for n in fields if original[n] is not None)
                assert instant(r["occurred_at"] or "") == instant(original["occurred_at"] or "")
            seen[r["event_id"] or ""] = r
    assert {r["patient_id"] for r in seen.values()} == enrolled
    assert len(enrolled) == clean.n_patients


def test_timestamps_mix_offsets_and_never_lie_in_the_future(clean: SimulationResult) -> None:
    rows = [r for rs in delivered_rows(clean).values() for r in rs]
    suffixes = Counter(re.sub(r".*:\d\d(?=Z|[+-])", "", r["occurred_at"] or "") for r in rows)
    assert {"Z", "+01:00", "+02:00", "-05:00"} <= set(suffixes)
    assert max(instant(r["recorded_at"] or "") for r in rows) < REFERENCE


def test_without_faults_nothing_is_faulty(clean: SimulationResult) -> None:
    assert clean.fault_counts == {} and clean.faults == [] and clean.n_fault_rows == 0
    assert sorted(p.parent.name for p in clean.landing.rglob("*.*")) == ["NL01"] * 4 + ["NL02"] * 4 + ["NL03"] * 4
    assert clean.warning_counts["late_entry"] > 0  # late entries are ordinary data, not faults


def test_every_fault_kind_is_injected_and_counted(faulty: SimulationResult) -> None:
    assert set(faulty.fault_counts) == ROW_RULES | FILE_RULES
    assert Counter(r.rule for r in faulty.faults) == faulty.fault_counts
    assert faulty.unvalidated_red_flags == 3  # one per site
    share = faulty.n_fault_rows / (faulty.n_events + faulty.n_fault_rows)
    assert 0.005 < share < 0.03
    assert (faulty.landing / "XX99").is_dir()


def test_faults_are_added_to_the_clean_data_never_replacing_it(clean: SimulationResult,
                                                                faulty: SimulationResult) -> None:
    def ids(result: SimulationResult) -> Counter[str | None]:
        return Counter(r["event_id"] for rows in delivered_rows(result).values() for r in rows)

    clean_ids, faulty_ids = ids(clean), ids(faulty)
    assert faulty.n_events == clean.n_events
    assert clean_ids - faulty_ids == Counter()
    assert (faulty_ids - clean_ids).total() == faulty.n_fault_rows


def test_each_row_fault_is_where_the_record_says_and_breaks_its_rule(faulty: SimulationResult) -> None:
    rows = delivered_rows(faulty)
    ids = Counter(r["event_id"] for rs in rows.values() for r in rs)
    for fault in faulty.faults:
        if fault.row is None:
            continue
        row = rows[fault.path][fault.row - 1]
        assert row["event_id"] == fault.event_id
        found = violations(row, fault.path.parent.name, REFERENCE)
        if fault.rule in ("duplicate", "event_id_conflict"):
            assert found == [] and ids[fault.event_id] == 2
        elif fault.rule in ("patient_not_enrolled", "target_unknown", "duplicate_enrollment", "target_other_patient"):
            assert found == []  # a cross-row rule: nothing wrong with the row itself
        else:
            assert found == [fault.rule], (fault, row)


def test_file_faults(faulty: SimulationResult) -> None:
    by_rule: dict[str, list[Path]] = {}
    for f in faulty.faults:
        if f.row is None:
            by_rule.setdefault(f.rule, []).append(f.path)
    assert len(by_rule["unreadable"]) == 2
    (copy,) = by_rule["file_duplicate"]
    assert any(p.read_bytes() == copy.read_bytes() for p in faulty.files if p != copy)
    (latin,) = by_rule["not_utf8"]
    with pytest.raises(UnicodeDecodeError):
        latin.read_bytes().decode("utf-8")
    (no_id,) = by_rule["missing_column"]
    assert "event_id" not in read_rows(no_id)[0]
    (extra,) = by_rule["unknown_column"]
    assert {r["entered_by"] for r in read_rows(extra)} == {"research nurse"}
    for truncated in by_rule["unreadable"]:
        with pytest.raises(Exception):  # noqa: B017 - gzip and parquet fail in their own ways
            read_rows(truncated)
