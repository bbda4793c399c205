"""sql/red_flag_at_risk.sql + sql/red_flag_incidence.sql + incidence.py: incidence per stratum (SAP §6)."""

from __future__ import annotations

import math

import pytest

from .factories import at, derive, enroll, ev, report, rows

Z = 1.959963984540054  # the 97.5 % normal quantile


def chi2_4df_quantile(q: float) -> float:
    """Hand computation: P(X <= x) = 1 - exp(-x/2)(1 + x/2) for 4 degrees of freedom, solved by bisection."""
    low, high = 0.0, 100.0
    for _ in range(200):
        mid = (low + high) / 2
        if 1 - math.exp(-mid / 2) * (1 + mid / 2) < q:
            low = mid
        else:
            high = mid
    return low


def wilson(cases: int, n: int) -> tuple[float, float]:
    """Hand computation: the roots p of (p̂ - p)² = z² p (1 - p) / n."""
    p_hat = cases / n
    a = 1 + Z * Z / n
    b = -(2 * p_hat + Z * Z / n)
    c = p_hat * p_hat
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


@pytest.fixture(scope="module")
def incidence():  # type: ignore[no-untyped-def]
    con = derive([
        # P1: bladder at day 14, followed to day 21
        enroll("P1"), report("p1a", at(-1), patient_id="P1"),
        report("p1b", at(14), patient_id="P1", bladder_dysfunction=True), report("p1c", at(21), patient_id="P1"),
        # P2: withdrawn at day 7; bladder at day 10, after the withdrawal, is not a case
        enroll("P2"), ev("p2w", "withdrawal", at(7), "P2"),
        report("p2a", at(10), patient_id="P2", bladder_dysfunction=True),
        # P3: saddle numbness at day 0 (prevalent), followed to day 28
        enroll("P3"), report("p3a", at(0), patient_id="P3", saddle_numbness=True),
        report("p3b", at(28), patient_id="P3"),
    ])
    return {(r["stratum_type"], r["stratum"], r["flag"]): r for r in rows(con, "select * from red_flag_incidence")}


def test_every_stratum_and_flag_is_listed(incidence) -> None:  # type: ignore[no-untyped-def]
    strata = {(t, s) for t, s, _ in incidence}
    assert strata == {("overall", "overall"), ("site", "S1"), ("site", "S2"), ("arm", "surgery"),
                      ("arm", "conservative")}
    assert {f for _, _, f in incidence} == {"BLADDER", "BOWEL", "SADDLE", "BILATERAL", "MOTOR",
                                            "PARESTHESIA_SPREAD", "OTHER", "ANY"}
    assert len(incidence) == 5 * 8


def test_cases_time_at_risk_and_exact_intervals(incidence) -> None:  # type: ignore[no-untyped-def]
    # at risk: P1 (2 weeks, case), P2 (1 week, ended by the withdrawal), P3 (4 weeks)
    low, high = wilson(1, 3)
    assert incidence[("overall", "overall", "BLADDER")] == pytest.approx({
        "stratum_type": "overall", "stratum": "overall", "flag": "BLADDER", "at_risk": 3, "cases": 1,
        "patient_weeks": 7.0, "rate_per_100pw": 100 / 7,
        "rate_ci_low": -math.log(0.975) * 100 / 7, "rate_ci_high": chi2_4df_quantile(0.975) / 2 * 100 / 7,
        "proportion": 1 / 3, "proportion_ci_low": low, "proportion_ci_high": high,
    })


def test_zero_cases_give_rate_zero_and_an_upper_limit(incidence) -> None:  # type: ignore[no-untyped-def]
    # P3's saddle numbness is prevalent: only P1 (3 weeks) and P2 (1 week) are at risk
    assert incidence[("site", "S1", "SADDLE")] == pytest.approx({
        "stratum_type": "site", "stratum": "S1", "flag": "SADDLE", "at_risk": 2, "cases": 0, "patient_weeks": 4.0,
        "rate_per_100pw": 0.0, "rate_ci_low": 0.0, "rate_ci_high": -math.log(0.025) * 100 / 4,
        "proportion": 0.0, "proportion_ci_low": 0.0, "proportion_ci_high": Z * Z / (2 + Z * Z),
    })


def test_any_excludes_patients_with_a_prevalent_flag(incidence) -> None:  # type: ignore[no-untyped-def]
    got = incidence[("arm", "surgery", "ANY")]
    assert (got["at_risk"], got["cases"], got["patient_weeks"]) == (2, 1, pytest.approx(3.0))


def test_a_stratum_with_nobody_at_risk_is_listed_with_nulls(incidence) -> None:  # type: ignore[no-untyped-def]
    for stratum in (("site", "S2"), ("arm", "conservative")):
        assert incidence[(*stratum, "MOTOR")] == {
            "stratum_type": stratum[0], "stratum": stratum[1], "flag": "MOTOR", "at_risk": 0, "cases": 0,
            "patient_weeks": None, "rate_per_100pw": None, "rate_ci_low": None, "rate_ci_high": None,
            "proportion": None, "proportion_ci_low": None, "proportion_ci_high": None,
        }


def test_time_at_risk_is_never_negative() -> None:
    con = derive([enroll(), ev("w1", "withdrawal", at(-2)), report("r1", at(5), bowel_dysfunction=True)])
    got = rows(con, "select at_risk, cases, patient_weeks, rate_per_100pw, rate_ci_high, proportion "
                    "from red_flag_incidence where stratum_type = 'overall' and flag = 'BOWEL'")
    assert got == [{"at_risk": 1, "cases": 0, "patient_weeks": 0.0, "rate_per_100pw": None, "rate_ci_high": None,
                    "proportion": 0.0}]


def test_an_occurrence_at_the_withdrawal_instant_is_a_case() -> None:
    con = derive([enroll(), ev("w1", "withdrawal", at(7)), report("r1", at(7), bowel_dysfunction=True)])
    got = rows(con, "select cases, patient_weeks from red_flag_incidence where stratum_type = 'overall' "
                    "and flag in ('BOWEL', 'BLADDER') order by flag")
    assert got == [{"cases": 0, "patient_weeks": 1.0}, {"cases": 1, "patient_weeks": 1.0}]
