"""The statistics of SAP §6 and §7: distribution quantiles from scipy.special, curves by counting.

Pure functions on small, already aggregated inputs (counts per stratum, one
time per patient); no I/O. The tests cross-check every one of them against a
hand computation and lifelines. Derivation imports neither scipy.stats nor
lifelines: together they take seconds to import, more than an incremental
derivation of the tables costs; scipy.stats' chi2 and norm quantiles are these
same scipy.special functions (chdtri, chdtrc, ndtri).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from scipy.special import chdtrc, chdtri, ndtri

#: the two-sided 95% normal quantile used by the Wilson interval
Z95 = float(ndtri(0.975))


def poisson_rate_ci(cases: int, patient_weeks: float | None, per: float = 100.0) -> tuple[float | None, float | None]:
    """Exact Poisson 95% interval of a rate: [χ²₀.₀₂₅(2k)/2, χ²₀.₉₇₅(2k+2)/2] × per / patient_weeks.

    The lower limit is 0 when k = 0. No interval without person-time.
    """
    if patient_weeks is None or patient_weeks <= 0:
        return None, None
    # chi2.ppf(q, df) is chdtri(df, 1 - q)
    low = 0.0 if cases == 0 else float(chdtri(2 * cases, 0.975)) / 2
    high = float(chdtri(2 * cases + 2, 0.025)) / 2
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

    At each time: who is still at risk just before it, how many have the event and how many are
    censored there (lifelines' event table, counted directly). The curve is the product of those
    counts taken as exact fractions: a float product can land a hair above 1/2 where the product
    is exactly 1/2, and the SAP's median is "the smallest time where the curve is <= 0.5".
    """
    counts: dict[float, list[int]] = {}
    for time, event in zip(durations, observed, strict=True):
        tally = counts.setdefault(float(time), [0, 0])
        tally[0 if event else 1] += 1
    at_risk = len(durations)
    steps = []
    curve = Fraction(1)
    for time in sorted(counts):
        events, censored = counts[time]
        curve *= Fraction(at_risk - events, at_risk)
        steps.append(KmStep(time=time, at_risk=at_risk, events=events, censored=censored, exact=curve))
        at_risk -= events + censored
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
    """Log-rank test across the groups: p of χ² with groups − 1 degrees of freedom.

    lifelines' multivariate_logrank_test, operation for operation, so that the p-value is the one
    lifelines gives to the last bit (a statistician re-running it on ADTTE gets exactly this number)
    without importing lifelines and pandas in every derive (over a second). Groups are taken in
    order of first appearance and the event table has one row per distinct duration, as in
    lifelines; tests/derive/test_stats.py compares the two bit for bit. None with fewer than two
    groups or when the statistic is undefined (lifelines' NaN); with no event at all it is 1, as lifelines.
    """
    names = list(dict.fromkeys(groups))
    if len(names) < 2:
        return None
    import numpy as np

    index = {g: i for i, g in enumerate(names)}
    k = len(names)
    times = sorted({float(t) for t in durations})
    row = {t: i for i, t in enumerate(times)}
    removed = np.zeros((k, len(times)))  # lifelines' survival table, one row per group
    events = np.zeros((k, len(times)))
    for time, group, event in zip(durations, groups, observed, strict=True):
        removed[index[group], row[float(time)]] += 1
        if event:
            events[index[group], row[float(time)]] += 1
    before = np.zeros_like(removed)
    before[:, 1:] = np.cumsum(removed, axis=1)[:, :-1]
    at_risk = removed.sum(axis=1)[:, None] - before  # n_ij
    d = events.sum(axis=0)
    left = np.zeros(len(times))
    left[1:] = np.cumsum(removed.sum(axis=0))[:-1]
    n = removed.sum() - left  # n_i
    z = events.sum(axis=1) - (at_risk * (d / n)[None, :]).sum(axis=1)  # observed − expected
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (n - d) / (n - 1)
    ratio[~np.isfinite(ratio)] = 1
    weighted = np.nan_to_num(np.vstack([at_risk, n[None, :]]) * np.sqrt(ratio * d / n**2)[None, :], nan=0.0)
    # a separate Fortran-order buffer: numpy would take A·Aᵀ of one buffer to syrk, lifelines' to gemm
    v = -np.dot(weighted, weighted.T.copy(order="F"))
    ix = np.arange(k)
    v[ix, ix] = v[ix, ix] - v[-1, ix]
    v = v[:-1, :-1]
    # a pseudo-inverse, as lifelines: a group whose patients all leave before any event adds nothing
    statistic = float(z[:-1] @ np.linalg.pinv(v[:-1, :-1]) @ z[:-1])
    p = float(chdtrc(k - 1, statistic))
    return None if math.isnan(p) else p
