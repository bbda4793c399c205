"""adeff.sql: ADEFF is trajectory (every parameter and week) with patient_week on the LEGPAIN records."""

from __future__ import annotations

from typing import Any

from pipeline.derive.adam.metadata import dataset, params
from tests.derive.factories import rows

from .conftest import Exported
from .readback import by_pyreadstat


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


def test_adeff_records_from_xpt_equal_trajectory_row_for_row(exported: Exported) -> None:
    records, _ = by_pyreadstat(dataset("ADEFF"), exported.xpt / "adeff.xpt")
    got = sorted((r["SITEID"], r["SUBJID"], r["TRTP"], r["PARAMCD"], int(r["AVISITN"]), r["AVAL"], r["BASE"],
                  r["CHG"], r["PCHG"]) for r in records)
    want = sorted((t["site_id"], t["patient_id"], t["arm"], t["param"], t["week"], _num(t["value"]),
                   _num(t["baseline"]), _num(t["change"]), _num(t["pct_change"]))
                  for t in rows(exported.con, "select * from trajectory"))
    assert got == want and len(got) > 1000


def test_legpain_records_equal_trajectory_and_carry_patient_week(exported: Exported) -> None:
    records, _ = by_pyreadstat(dataset("ADEFF"), exported.xpt / "adeff.xpt")
    legpain = {(r["SITEID"], r["SUBJID"], int(r["AVISITN"])): r for r in records if r["PARAMCD"] == "LEGPAIN"}
    trajectory = rows(exported.con, "select * from trajectory where param = 'LEGPAIN'")
    assert len(legpain) == len(trajectory)
    for t in trajectory:
        r = legpain[(t["site_id"], t["patient_id"], t["week"])]
        assert (r["AVAL"], r["BASE"], r["CHG"], r["PCHG"]) == (
            _num(t["value"]), _num(t["baseline"]), _num(t["change"]), _num(t["pct_change"]))
    week_rows = rows(exported.con, "select * from patient_week")
    assert len(week_rows) == len(legpain)
    statuses = set()
    for w in week_rows:
        r = legpain[(w["site_id"], w["patient_id"], w["week"])]
        flag = {True: "Y", False: "N", None: ""}[w["responder"]]
        assert (r["PWSTAT"], r["CENTRAL"] or None, r["CRIT1FL"], r["IMPSIGN"]) == (
            w["status"], w["centralization"], flag, _num(w["improvement_signs"]))
        assert r["CRIT1"] == "Leg pain change from baseline <= -30%"
        statuses.add(r["PWSTAT"])
    assert {"baseline", "improving", "recovered"} <= statuses


def test_baseline_flag_visits_and_parameters(exported: Exported) -> None:
    records, _ = by_pyreadstat(dataset("ADEFF"), exported.xpt / "adeff.xpt")
    names = {code: (n, label) for code, n, label in params()}
    assert {r["PARAMCD"] for r in records} == set(names)
    for r in records:
        week = int(r["AVISITN"])
        assert (r["ABLFL"], r["AVISIT"]) == (("Y", "Baseline") if week == 0 else ("", f"Week {week}"))
        assert (int(r["PARAMN"]), r["PARAM"]) == names[r["PARAMCD"]]
        if week == 0:
            assert r["AVAL"] == r["BASE"]
        if r["PARAMCD"] != "LEGPAIN":
            assert (r["CRIT1"], r["CRIT1FL"], r["PWSTAT"], r["CENTRAL"], r["IMPSIGN"]) == ("", "", "", "", None)
