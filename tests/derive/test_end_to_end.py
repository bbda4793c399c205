"""A simulated Peul-like study (pipeline/simulate), ingested (pipeline/ingest) and derived: the SAP
tables recover what the simulator put in (medians near 4 and 12 weeks)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipeline.config import Paths, load_study

simulate = pytest.importorskip("pipeline.simulate")
run = pytest.importorskip("pipeline.ingest.run")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Paths, duckdb.DuckDBPyConnection]:
    from pipeline.derive.api import derive

    root = tmp_path_factory.mktemp("peul")
    paths = Paths(root / "study.toml", root / "landing", root / "warehouse")
    simulate.simulate_study(paths.landing, paths.study, simulate.SimulationOptions(seed=2007, n_patients=400))
    study = load_study(paths.study)
    run.ingest(paths, study)
    derive(paths, study)
    return paths, duckdb.connect(str(paths.db_path), read_only=True)


def table(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:  # type: ignore[type-arg]
    return con.sql(sql).to_arrow_table().to_pylist()


@pytest.mark.slow
def test_recovery_medians_near_4_and_12_weeks(study) -> None:  # type: ignore[no-untyped-def]
    _, con = study
    summary = {r["arm"]: r for r in table(con, "select * from recovery_summary")}
    assert summary["surgery"]["median_weeks"] == pytest.approx(4, abs=1.5)
    assert summary["conservative"]["median_weeks"] == pytest.approx(12, abs=2.5)
    assert summary["surgery"]["logrank_p"] < 1e-3
    assert summary["surgery"]["logrank_p"] == summary["conservative"]["logrank_p"]
    assert summary["surgery"]["recovered_w52"] >= 0.85 and summary["conservative"]["recovered_w52"] >= 0.85


@pytest.mark.slow
def test_every_table_is_filled(study) -> None:  # type: ignore[no-untyped-def]
    paths, con = study
    for name in ("trajectory", "patient_week", "treatment_flares", "red_flag_occurrences", "recovery_km",
                 "dq_site_week", "dq_batch"):
        assert table(con, f"select count(*) as n from {name}")[0]["n"] > 0, name
    classes = {r["classification"] for r in table(con, "select distinct classification from treatment_flares")}
    assert {"no_flare", "expected_flare", "prolonged_flare"} <= classes
    statuses = {r["status"] for r in table(con, "select distinct status from patient_week")}
    assert {"baseline", "recovered", "improving"} <= statuses
    assert Path(paths.db_path).is_file()


@pytest.mark.slow
def test_most_simulated_flares_are_expected_not_prolonged(study) -> None:  # type: ignore[no-untyped-def]
    # the simulator makes 85 % of its flares short (docs/simulator.md); with the flares that day-to-day noise
    # makes look like one, SAP §5 still reads more of them as expected than as prolonged (before: 82 vs 110)
    _, con = study
    counts = {r["classification"]: r["n"] for r in table(con, """
        select classification, count(*) as n from treatment_flares
        where modality in ('physical_therapy', 'dry_needling', 'epidural_steroid') group by classification""")}
    assert counts["expected_flare"] > counts["prolonged_flare"], counts
