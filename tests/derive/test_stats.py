"""stats.py: the library-backed statistics cross-checked against hand computations."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from scipy.stats import chi2

from pipeline.derive import stats

from .test_red_flag_incidence import Z, chi2_4df_quantile, wilson


def test_the_normal_quantile() -> None:
    assert abs(stats.Z95 - Z) < 1e-12


@pytest.mark.parametrize(("cases", "weeks", "expected"), [
    # k = 0: [0, -ln(0.025)] (χ² with 2 degrees of freedom is exponential)
    (0, 10.0, (0.0, -math.log(0.025) * 10)),
    # k = 1: lower -ln(0.975); upper from χ² with 4 degrees of freedom
    (1, 50.0, (-math.log(0.975) * 2, chi2_4df_quantile(0.975) / 2 * 2)),
])
def test_exact_poisson_limits(cases: int, weeks: float, expected: tuple[float, float]) -> None:
    assert stats.poisson_rate_ci(cases, weeks) == pytest.approx(expected)


def test_poisson_limits_bracket_the_rate_and_need_person_time() -> None:
    low, high = stats.poisson_rate_ci(7, 20.0)
    assert low is not None and high is not None
    assert low < 100 * 7 / 20 < high
    assert stats.poisson_rate_ci(3, 0.0) == (None, None)
    assert stats.poisson_rate_ci(3, None) == (None, None)


@pytest.mark.parametrize(("cases", "n"), [(0, 1), (0, 5), (1, 3), (5, 10), (9, 10), (10, 10), (37, 120)])
def test_wilson_interval(cases: int, n: int) -> None:
    low, high = wilson(cases, n)
    assert stats.wilson_ci(cases, n) == pytest.approx((max(low, 0.0), min(high, 1.0)), abs=1e-12)


@pytest.mark.parametrize("n", [3, 6, 7, 10, 12, 13, 25])
def test_wilson_interval_ends_exactly_at_0_and_1_with_no_or_all_cases(n: int) -> None:
    assert stats.wilson_ci(0, n)[0] == 0.0
    assert stats.wilson_ci(n, n)[1] == 1.0


def test_wilson_without_patients() -> None:
    assert stats.wilson_ci(0, 0) == (None, None)


def km_by_hand(times: list[float], events: list[bool]) -> list[tuple[float, int, int, int, float]]:
    """Hand-rolled product-limit estimate: (time, at risk before, events, censored, survival after)."""
    out, survival = [], 1.0
    for t in sorted(set(times)):
        at_risk = sum(1 for x in times if x >= t)
        d = sum(1 for x, e in zip(times, events, strict=True) if x == t and e)
        c = sum(1 for x, e in zip(times, events, strict=True) if x == t and not e)
        survival *= 1 - d / at_risk
        out.append((t, at_risk, d, c, survival))
    return out


TIMES = [0.0, 1.0, 2.0, 2.0, 3.0, 3.5, 5.0, 5.0, 8.0]
EVENTS = [False, True, True, False, True, False, True, True, False]


def test_kaplan_meier_matches_the_product_limit_by_hand() -> None:
    steps = stats.kaplan_meier(TIMES, EVENTS)
    expected = km_by_hand(TIMES, EVENTS)
    assert [(s.time, s.at_risk, s.events, s.censored) for s in steps] == [e[:4] for e in expected]
    assert [s.survival for s in steps] == pytest.approx([e[4] for e in expected])


def test_median_and_curve_lookups() -> None:
    steps = stats.kaplan_meier(TIMES, EVENTS)
    # survival: 1 (t=0), 7/8 (1), 3/4 (2), 3/5 (3), 3/5 (3.5), 1/5 (5), 1/5 (8)
    assert stats.median_time(steps) == 5.0
    assert stats.survival_at(steps, 0.5) == 1.0
    assert stats.survival_at(steps, 3.0) == pytest.approx(0.6)  # the step at 3 included
    assert stats.survival_at(steps, 4.9) == pytest.approx(0.6)
    assert stats.survival_at(steps, 8.0) == pytest.approx(0.2)
    assert stats.survival_at(steps, 8.5) is None  # beyond the last time


def test_median_is_none_when_the_curve_stays_above_half() -> None:
    assert stats.median_time(stats.kaplan_meier([1.0, 2.0, 3.0], [True, False, False])) is None


def logrank_by_hand(times: list[float], groups: list[str], events: list[bool]) -> float:
    """Two-group log-rank: (O - E)² / V for the first group, χ² with 1 degree of freedom."""
    first = groups[0]
    o_minus_e = variance = 0.0
    for t in sorted({x for x, e in zip(times, events, strict=True) if e}):
        n = sum(1 for x in times if x >= t)
        n1 = sum(1 for x, g in zip(times, groups, strict=True) if x >= t and g == first)
        d = sum(1 for x, e in zip(times, events, strict=True) if x == t and e)
        d1 = sum(1 for x, g, e in zip(times, groups, events, strict=True) if x == t and e and g == first)
        o_minus_e += d1 - d * n1 / n
        if n > 1:
            variance += d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1)
    return float(chi2.sf(o_minus_e ** 2 / variance, 1))


def test_logrank_matches_the_hand_computation() -> None:
    times = [1.0, 2.0, 2.0, 4.0, 6.0, 3.0, 5.0, 5.0, 7.0, 9.0, 9.0]
    groups = ["a"] * 5 + ["b"] * 6
    events = [True, True, False, True, True, True, True, False, True, True, False]
    assert stats.logrank_p(times, groups, events) == pytest.approx(logrank_by_hand(times, groups, events))


def test_logrank_needs_two_groups() -> None:
    assert stats.logrank_p([1.0, 2.0], ["a", "a"], [True, True]) is None


def test_median_is_the_time_the_curve_reaches_exactly_one_half() -> None:
    # six patients recover at weeks 1..6: after week 3 the curve is 3/6, exactly one half
    steps = stats.kaplan_meier([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [True] * 6)
    assert steps[2].survival == 0.5
    assert stats.median_time(steps) == 3.0
    assert stats.survival_at(steps, 2.0) == Fraction(2, 3)


def test_kaplan_meier_counts_and_logrank_agree_with_lifelines_to_the_bit() -> None:
    # derivation counts the curve and computes the log-rank test itself (lifelines takes seconds to
    # import); lifelines is the reference on random data with ties, censoring and three groups
    import random
    import warnings

    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test

    rng = random.Random(14)
    for case in range(60):
        n = rng.randint(2, 60) if case < 40 else rng.randint(100, 600)
        times = [rng.randint(0, 15) / rng.choice([1, 7]) for _ in range(n)]
        events = [rng.random() < 0.6 for _ in range(n)]
        groups = [rng.choice("abc"[: rng.randint(2, 3)]) for _ in range(n)]
        table = KaplanMeierFitter().fit(times, events).event_table
        expected = [(float(t), int(r["at_risk"]), int(r["observed"]), int(r["censored"]))
                    for t, r in table.iterrows() if int(r["removed"])]
        assert [(s.time, s.at_risk, s.events, s.censored) for s in stats.kaplan_meier(times, events)] == expected
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = float(multivariate_logrank_test(times, groups, events).p_value)
        # to the last bit: a statistician re-running lifelines on ADTTE must get exactly recovery_summary's p
        assert stats.logrank_p(times, groups, events) == (None if math.isnan(reference) else reference)
