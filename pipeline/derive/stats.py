"""The statistics of SAP §6 and §7, delegated to scipy and lifelines.

Pure functions on small, already aggregated inputs (counts per stratum, one
time per patient); no I/O. The tests cross-check every one of them against a
hand computation.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from scipy.stats import chi2, norm

#: the two-sided 95% normal quantile used by the Wilson interval
Z95 = float(norm.ppf(0.975))


def poisson_rate_ci(cases: int, patient_weeks: float | None, per: float = 100.0) -> tuple[float | None, float | None]:
    """Exact Poisson 95% interval of a rate: [χ²₀.₀₂₅(2k)/2, χ²₀.₉₇₅(2k+2)/2] × per / patient_weeks.

    The lower limit is 0 when k = 0. No interval without person-time.
    """
    if patient_weeks is None or patient_weeks <= 0:
        return None, None
    low = 0.0 if cases == 0 else float(chi2.ppf(0.025, 2 * cases)) / 2
    high = float(chi2.ppf(0.975, 2 * cases + 2)) / 2
    return low * per / patient_weeks, high * per / patient_weeks


def wilson_ci(cases: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson score 95% interval of the proportion cases / n; none when n = 0."""
    if n <= 0:
        return None, None
    p = cases / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # the two terms cancel exactly only on paper: at 0 cases the low end is 0, at n cases the high end 1
    low = 0.0 if cases == 0 else max(0.0, centre - half)
    high = 1.0 if cases == n else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class KmStep:
    """One distinct event or censoring time of a Kaplan–Meier curve."""

    time: float
    at_risk: int  # just before the time
    events: int
    censored: int
    exact: Fraction  # the curve just after the time: the product of (at_risk − events) / at_risk so far

    @property
    def survival(self) -> float:
        return float(self.exact)


def kaplan_meier(durations: Sequence[float], observed: Sequence[bool]) -> list[KmStep]:
    """Kaplan–Meier estimate as one step per distinct event or censoring time.

    lifelines counts who is at risk, has the event and is censored at each time. The
    curve is the product of those counts taken as exact fractions: lifelines' own curve
    (exp of a sum of logs) can land a hair above 1/2 where the product is exactly 1/2,
    and the SAP's median is "the smallest time where the curve is <= 0.5".
    """
    if not durations:
        return []
    from lifelines import KaplanMeierFitter

    table = KaplanMeierFitter().fit(list(durations), event_observed=[bool(e) for e in observed]).event_table
    steps = []
    curve = Fraction(1)
    for time, row in table.iterrows():
        if int(row["removed"]) == 0:
            continue  # lifelines' origin row
        at_risk, events = int(row["at_risk"]), int(row["observed"])
        curve *= Fraction(at_risk - events, at_risk)
        steps.append(KmStep(time=float(time), at_risk=at_risk, events=events,
                            censored=int(row["censored"]), exact=curve))
    return steps


def median_time(steps: Sequence[KmStep]) -> float | None:
    """The smallest time at which the curve is <= 0.5 (None if it never gets there)."""
    return next((s.time for s in steps if s.exact <= Fraction(1, 2)), None)


def survival_at(steps: Sequence[KmStep], time: float) -> Fraction | None:
    """The curve at `time`, exactly (right-continuous, the step at `time` included); None beyond the last time."""
    if not steps or time > steps[-1].time:
        return None
    value = Fraction(1)
    for s in steps:
        if s.time > time:
            break
        value = s.exact
    return value


def logrank_p(durations: Sequence[float], groups: Sequence[str], observed: Sequence[bool]) -> float | None:
    """Log-rank test across the groups (lifelines): p of χ² with groups − 1 degrees of freedom.

    None with fewer than two groups or when the statistic is undefined (e.g. no event at all).
    """
    if len(set(groups)) < 2:
        return None
    from lifelines.statistics import multivariate_logrank_test

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = multivariate_logrank_test(list(durations), list(groups), [bool(e) for e in observed])
    p = float(result.p_value)
    return None if math.isnan(p) else p
