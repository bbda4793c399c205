"""GX's DuckDB engine (pipeline/ingest/gx_duckdb.py) gives the verdicts of GX's own pandas engine.

Same suites, same staged rows (the views GX validates), both engines: identical findings row by row,
rule by rule, and identical counts per expectation, over every bad delivery of tests/data/bad_input
and over a simulated study with the DTS §5 faults.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipeline.config import Site, Study, load_study
from pipeline.ingest.discover import LandingFile, scan
from pipeline.ingest.gx_validate import ChunkVerdict, RowChecker
from pipeline.ingest.stage import CHECKS, Stager, parameters, scratch
from pipeline.simulate import SimulationOptions, simulate_study

DATA = Path(__file__).resolve().parent.parent / "data"
BAD = sorted(p for p in (DATA / "bad_input").iterdir() if not p.name.endswith(".expect.json"))
NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def checker() -> RowChecker:
    return RowChecker()


def _rows(v: ChunkVerdict) -> dict[int, list[tuple[str, str, str]]]:
    return {row: sorted((f.rule, f.field, f.message) for f in fs) for row, fs in v.findings.items() if fs}


def _counts(v: ChunkVerdict) -> dict[str, list[Any]]:
    """Per suite: (rule, field, column, success, unexpected_count) of every expectation run."""
    out = {}
    for suite, res in v.results.items():
        out[suite] = sorted(
            (r["expectation_config"]["meta"]["rule"], r["expectation_config"]["meta"]["field"],
             json.dumps(r["expectation_config"]["kwargs"].get("column")), r["success"],
             (r.get("result") or {}).get("unexpected_count"))
            for r in res["results"])
    return out


def _both(checker: RowChecker, con: duckdb.DuckDBPyConnection, study: Study,
          site: str) -> tuple[ChunkVerdict, ChunkVerdict]:
    params = parameters(study, site, NOW)
    return (checker.check_table(con, CHECKS, params, engine="duckdb"),
            checker.check_table(con, CHECKS, params, engine="pandas"))


def _stage(checker: RowChecker, con: duckdb.DuckDBPyConnection, study: Study, files: list[LandingFile]) -> int:
    stager = Stager(con, checker, study, NOW)
    staged = [stager.add(f, f"sha{i}", i) for i, f in enumerate(files)]
    return sum(s.received for s in staged)


def _assert_same(duck: ChunkVerdict, pandas: ChunkVerdict) -> None:
    assert _rows(duck) == _rows(pandas)
    assert _counts(duck) == _counts(pandas)


@pytest.mark.parametrize("case", BAD, ids=[c.name for c in BAD])
def test_duckdb_engine_gives_the_pandas_engines_verdicts_on_a_bad_delivery(checker: RowChecker, case: Path) -> None:
    site = json.loads((case.parent / f"{case.name.split('.')[0]}.expect.json").read_text())["site"]
    con = scratch(None)
    f = LandingFile(site, f"{site}/{case.name}", case, case.stat().st_size, case.stat().st_mtime_ns)
    study = Study("T", ("surgery", "conservative"), (Site(site),), max_file_bytes=1 << 30)
    if not _stage(checker, con, study, [f]):
        pytest.skip("the file is rejected whole before validation")
    duck, pandas = _both(checker, con, study, site)
    _assert_same(duck, pandas)
    con.close()


def test_every_bad_delivery_with_rows_gets_findings_from_the_duckdb_engine(checker: RowChecker) -> None:
    """The differential test compares something: most fixtures break a per-row rule."""
    with_findings = 0
    for case in BAD:
        site = json.loads((case.parent / f"{case.name.split('.')[0]}.expect.json").read_text())["site"]
        con = scratch(None)
        f = LandingFile(site, f"{site}/{case.name}", case, case.stat().st_size, case.stat().st_mtime_ns)
        if _stage(checker, con, Study("T", ("surgery", "conservative"), (Site(site),)), [f]):
            params = parameters(Study("T", ("surgery", "conservative"), (Site(site),)), site, NOW)
            with_findings += bool(checker.check_table(con, CHECKS, params).findings)
        con.close()
    assert with_findings >= 15


@pytest.mark.slow
def test_duckdb_engine_gives_the_pandas_engines_verdicts_on_a_simulated_faulty_study(
        checker: RowChecker, tmp_path: Path) -> None:
    sim = simulate_study(tmp_path / "landing", tmp_path / "study.toml",
                         SimulationOptions(seed=11, n_patients=80, n_sites=2, weeks=20, faults=True))
    study = load_study(sim.study_path)
    files = list(scan(sim.landing))
    total = 0
    for site in sim.sites:
        con = scratch(None)
        assert _stage(checker, con, study, [f for f in files if f.site_folder == site])
        duck, pandas = _both(checker, con, study, site)
        _assert_same(duck, pandas)
        total += len(duck.findings)
        con.close()
    assert total > 20, "the simulated faults reach the per-row checks"


def test_a_correction_payload_gets_the_same_verdicts_from_both_engines(checker: RowChecker) -> None:
    import pandas as pd

    frame = pd.DataFrame({
        "_row": [1, 2, 3], "event_type": ["symptom_report"] * 3, "target_event_id": [None] * 3,
        "leg_pain_nrs": ["3", "x", None], "back_pain_nrs": ["2", "2", "2"], "pain_extent": ["leg", "leg", None],
        "paresthesia": ["none", "tingling", "numbness"], "paresthesia_extent": [None, None, "foot"],
        "muscle_spasm": ["false", "false", "true"], "_n_assessment": [0, 0, 0],
    })
    duck = checker.check(frame, {}, suites=("symptom_report",), engine="duckdb")
    pandas = checker.check(frame, {}, suites=("symptom_report",), engine="pandas")
    assert _rows(duck) == _rows(pandas)
    assert ("missing_required", "paresthesia_extent") in {(f.rule, f.field) for f in duck.findings[2]}
    assert 1 not in duck.findings
