"""adtte.sql: the time to recovery of SAP §7; Kaplan–Meier of ADTTE, read back from XPT, gives recovery_summary."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test

from pipeline.derive.adam.build import build_adam
from pipeline.derive.adam.metadata import dataset
from pipeline.derive.adam.xpt import write_xpt
from pipeline.derive.stats import kaplan_meier, median_time
from tests.derive.factories import T0, at, derive, enroll, ev, report, rows

from .conftest import Exported
from .readback import by_pyreadstat


def km_from_adtte(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per arm (TRTP): n, events, the SAP median (the curve's exact product, via lifelines' event table)."""
    out: dict[str, Any] = {}
    for arm in sorted({r["TRTP"] for r in records}):
        times = [r["AVAL"] for r in records if r["TRTP"] == arm]
        events = [r["CNSR"] == 0 for r in records if r["TRTP"] == arm]
        out[arm] = {"n": len(times), "events": sum(events), "median_weeks": median_time(kaplan_meier(times, events))}
    return out


def logrank(records: list[dict[str, Any]]) -> float:
    result = multivariate_logrank_test([r["AVAL"] for r in records], [r["TRTP"] for r in records],
                                       [r["CNSR"] == 0 for r in records])
    return float(result.p_value)


def test_kaplan_meier_of_the_xpt_gives_recovery_summary_exactly(exported: Exported) -> None:
    records, _ = by_pyreadstat(dataset("ADTTE"), exported.xpt / "adtte.xpt")
    summary = {r["arm"]: r for r in rows(exported.con, "select * from recovery_summary")}
    got = km_from_adtte(records)
    assert set(got) <= set(summary) and sum(s["n"] for s in summary.values()) == len(records)
    for arm, km in got.items():
        assert (km["n"], km["events"]) == (summary[arm]["n"], summary[arm]["events"])
        assert km["median_weeks"] == summary[arm]["median_weeks"], arm  # exactly, not approximately
        assert summary[arm]["logrank_p"] == logrank(records)


def test_the_medians_agree_with_lifelines_own_estimate_where_the_curve_does_not_touch_one_half(
        exported: Exported) -> None:
    records, _ = by_pyreadstat(dataset("ADTTE"), exported.xpt / "adtte.xpt")
    summary = {r["arm"]: r for r in rows(exported.con, "select * from recovery_summary")}
    for arm in summary:
        mine = [r for r in records if r["TRTP"] == arm]
        fit = KaplanMeierFitter().fit([r["AVAL"] for r in mine], [r["CNSR"] == 0 for r in mine])
        if not any(abs(s - 0.5) < 1e-12 for s in fit.survival_function_.iloc[:, 0]):
            assert fit.median_survival_time_ == summary[arm]["median_weeks"]


def test_a_curve_that_lands_exactly_on_one_half_has_its_median_there(tmp_path: Path) -> None:
    # two patients: one recovers at day 10, the other is censored at day 20: the curve is exactly 1/2 at day 10
    events = [enroll("P1"), enroll("P2"),
              report("r1", at(10), global_recovery=2), report("r2", at(20), global_recovery=4, patient_id="P2")]
    con = derive(events)
    path = write_xpt(build_adam(con, "TEST")["ADTTE"], dataset("ADTTE"), tmp_path / "adtte.xpt", datetime.now(UTC))
    records, _ = by_pyreadstat(dataset("ADTTE"), path)
    ((median,),) = con.sql("select median_weeks from recovery_summary where arm = 'surgery'").fetchall()
    assert median == 10 / 7 == km_from_adtte(records)["surgery"]["median_weeks"]


def test_recovery_censoring_and_their_instants_follow_sap_7() -> None:
    events = [
        enroll("P1"), report("a1", at(0.5), global_recovery=1),  # day 0: not a recovery
        report("a2", at(3), global_recovery=3), report("a3", at(9, hours=5), global_recovery=2),
        report("a4", at(12), global_recovery=1),
        enroll("P2"), report("b1", at(4), global_recovery=5, patient_id="P2"),
        report("b2", at(30), global_recovery=4, patient_id="P2"),
        enroll("P3"), report("c1", at(0, hours=20), global_recovery=1, patient_id="P3"),  # only day 0: censored at 0
        enroll("P4"),  # no report at all
        # a correction moves P5's recovery; a retraction removes P6's
        enroll("P5"), report("e1", at(5), global_recovery=4, patient_id="P5"),
        ev("e1c", "correction", at(6), patient_id="P5", recorded=at(7), target_event_id="e1",
           leg_pain_nrs=5, back_pain_nrs=3, pain_extent="calf", paresthesia="none", global_recovery=2),
        enroll("P6"), report("f1", at(8), global_recovery=1, patient_id="P6"),
        report("f2", at(15), global_recovery=4, patient_id="P6"),
        ev("f1r", "retraction", at(9), patient_id="P6", target_event_id="f1"),
    ]
    adtte = {r["SUBJID"]: r for r in build_adam(derive(events), "TEST")["ADTTE"].to_pylist()}
    expected = {
        "P1": (0, at(9, hours=5), "RECOVERED: GLOBAL RECOVERY 1-2", None),
        "P2": (1, at(30), "LAST SYMPTOM REPORT", "Not recovered by the latest symptom report"),
        "P3": (1, T0, "RANDOMISATION", "No symptom report after study day 0"),
        "P4": (1, T0, "RANDOMISATION", "No symptom report after study day 0"),
        "P5": (0, at(6), "RECOVERED: GLOBAL RECOVERY 1-2", None),
        "P6": (1, at(15), "LAST SYMPTOM REPORT", "Not recovered by the latest symptom report"),
    }
    for patient, (cnsr, adtm, evnt, cnsrdesc) in expected.items():
        r = adtte[patient]
        assert (r["CNSR"], r["ADTM"], r["EVNTDESC"], r["CNSRDESC"]) == (cnsr, adtm, evnt, cnsrdesc), patient
        assert r["STARTDTM"] == T0 and r["PARAMCD"] == "TTRECOV" and r["AVALU"] == "WEEKS"
        assert r["AVAL"] == pytest.approx((adtm - T0).total_seconds() / 86400 / 7, abs=0)
