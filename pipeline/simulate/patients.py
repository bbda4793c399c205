"""The latent clinical course of every simulated patient.

A `Cohort` holds one value per patient (numpy arrays, indexed by the patient's
position in the cohort): who they are, when they were randomised, their latent
time to perceived recovery T, and their baseline severity. Every observed
measure moves from its baseline value toward its recovered value as the
*progress* g = study day / T goes from 0 to 1; `symptom_values` and
`assessment_values` turn (patient, study day) pairs into DTS field values.

Integer-coded columns use -1 for null; enum columns hold the index of the value
in the field's choices (pipeline.schema), booleans 0/1.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from pipeline.simulate.clock import DAY, HOUR, amsterdam_offset
from pipeline.simulate.options import SimulationOptions

ARMS = ("surgery", "conservative")
#: Median time to perceived recovery per arm, weeks (Peul et al., NEJM 2007), and the share recovered by week 52.
MEDIAN_WEEKS = (4.0, 12.0)
RECOVERED_BY_WEEK_52 = 0.95

ACCRUAL_DAYS = 540  # 18 months of recruitment
CLOSE_OUT_DAYS = 60  # last follow-up visit at least this long before the reference time
WITHDRAWAL_RATE = 0.05

Array = np.ndarray


def observation_delay_days(diary_per_week: float) -> float:
    """Mean days from the latent recovery T to the first diary that can show it.

    T is rounded up to a whole study day (+0.5 d), the next diary is a geometric
    wait of (1 - q) / q days at daily diary probability q, and diaries are filled
    in the evening, ~0.35 d after the randomisation time of day.
    """
    q = min(1.0, diary_per_week / 7.0)
    return 0.5 + (1.0 - q) / q + 0.35


def recovery_lognormal(diary_per_week: float) -> tuple[Array, Array]:
    """(mu, sigma) per arm of the log-normal latent recovery time in days.

    Calibrated so that the *observed* recovery (SAP §7: first diary with
    global_recovery <= 2) has the medians of MEDIAN_WEEKS and RECOVERED_BY_WEEK_52
    recovered at one year: the latent median is the target minus the observation delay.
    """
    delay = observation_delay_days(diary_per_week)
    mu = np.log(np.asarray(MEDIAN_WEEKS) * 7.0 - delay)
    z = NormalDist().inv_cdf(RECOVERED_BY_WEEK_52)
    sigma = (np.log(52 * 7.0 - delay) - mu) / z
    return mu, sigma


@dataclass(frozen=True)
class Cohort:
    """One row per patient, ordered by site and then by randomisation time."""

    site: Array  # site index (0 = NL01)
    number: Array  # patient number within the site (1-based)
    arm: Array  # 0 surgery, 1 conservative
    age: Array
    sex: Array  # index into F, M, X
    side: Array  # index into left, right, bilateral
    enrolled: Array  # randomisation instant, epoch seconds (study day 0 starts here)
    enroll_tod: Array  # local time of day of the randomisation, seconds
    recovery_days: Array  # latent T, days (float)
    end_day: Array  # last study day with data (withdrawal day - 1, or weeks * 7)
    withdraw_day: Array  # study day of the withdrawal, -1 if none
    diary_prob: Array  # daily probability of a diary
    leg0: Array
    back0: Array
    extent0: Array  # 3 thigh ... 6 foot
    paresth0: Array  # 0 none, 1 tingling, 2 numbness
    pext0: Array
    paresth_slowness: Array  # paresthesia resolves at T * slowness
    walk0: Array
    walk_max: Array
    sit0: Array
    sit_max: Array
    gr0: Array
    gr_settle: Array  # days after T until "completely recovered" (1) becomes usual
    slr0: Array
    df0: Array
    pf0: Array
    calf0: Array
    calf_max: Array
    odi0: Array
    odi_end: Array
    slump_until: Array  # slump test positive while g < this

    def __len__(self) -> int:
        return int(self.site.size)

    @property
    def recovery_day(self) -> Array:
        """First whole study day at or after T (>= 1): from this day global_recovery is <= 2."""
        return np.maximum(1, np.ceil(self.recovery_days)).astype(np.int64)


def _pick(rng: np.random.Generator, n: int, probs: dict[int, float]) -> Array:
    return rng.choice(np.asarray(list(probs)), size=n, p=np.asarray(list(probs.values())))


def draw_cohort(rng: np.random.Generator, n: int, options: SimulationOptions, n_sites: int,
                first_number: int = 1) -> Cohort:
    """Draw `n` patients over `n_sites` sites (bigger sites first) for a study ending at the reference time.

    Patients are numbered per site from `first_number` in randomisation order.
    """
    weights = 1.0 / (1.0 + 0.25 * np.arange(n_sites))
    site = rng.choice(n_sites, size=n, p=weights / weights.sum())
    accrual_end = options.reference_s // DAY - options.weeks * 7 - CLOSE_OUT_DAYS
    local_day = rng.integers(accrual_end - ACCRUAL_DAYS, accrual_end, size=n)
    enroll_tod = rng.integers(9 * HOUR, 16 * HOUR, size=n)
    local = local_day * DAY + enroll_tod
    enrolled = local - amsterdam_offset(local - HOUR).astype(np.int64) * 60
    order = np.lexsort((enrolled, site))
    site, enrolled, enroll_tod = site[order], enrolled[order], enroll_tod[order]
    starts = np.searchsorted(site, np.arange(n_sites))
    number = np.arange(n) - starts[site] + first_number
    # permuted blocks of four within each site, in randomisation order
    arm = np.empty(n, dtype=np.int64)
    for s in range(n_sites):
        idx = np.flatnonzero(site == s)
        blocks = np.concatenate([rng.permutation([0, 0, 1, 1]) for _ in range((idx.size + 3) // 4)] or [np.zeros(0)])
        arm[idx] = blocks[: idx.size]
    mu, sigma = recovery_lognormal(options.diary_per_week)
    recovery_days = np.maximum(1.5, np.exp(mu[arm] + sigma[arm] * rng.standard_normal(n)))
    follow_up = options.weeks * 7
    withdrawn = (rng.random(n) < WITHDRAWAL_RATE) & (follow_up >= 28)
    withdraw_day = np.where(withdrawn, rng.integers(14, max(15, follow_up - 6), size=n), -1)
    end_day = np.where(withdrawn, withdraw_day - 1, follow_up)
    q = min(1.0, options.diary_per_week / 7.0)
    df0 = _pick(rng, n, {5: 0.6, 4: 0.28, 3: 0.12})
    extent0 = _pick(rng, n, {3: 0.1, 4: 0.15, 5: 0.35, 6: 0.4})
    return Cohort(
        site=site, number=number, arm=arm,
        age=np.clip(np.rint(rng.normal(47, 12, n)), 18, 80).astype(np.int64),
        sex=_pick(rng, n, {0: 0.48, 1: 0.50, 2: 0.02}),
        side=_pick(rng, n, {0: 0.48, 1: 0.48, 2: 0.04}),
        enrolled=enrolled, enroll_tod=enroll_tod,
        recovery_days=recovery_days, end_day=end_day, withdraw_day=withdraw_day,
        diary_prob=np.clip(q * rng.uniform(0.6, 1.4, n), 0.05, 1.0),
        leg0=rng.uniform(6.0, 9.5, n), back0=rng.uniform(2.0, 7.0, n),
        extent0=extent0,
        paresth0=_pick(rng, n, {0: 0.12, 1: 0.38, 2: 0.5}),
        pext0=np.clip(extent0 - rng.integers(0, 2, n), 3, 6),
        paresth_slowness=rng.uniform(0.8, 1.4, n),
        walk0=rng.uniform(5, 60, n), walk_max=rng.uniform(240, 720, n),
        sit0=rng.uniform(10, 60, n), sit_max=rng.uniform(120, 480, n),
        gr0=_pick(rng, n, {4: 0.45, 5: 0.4, 6: 0.15}),
        gr_settle=rng.uniform(7, 42, n),
        slr0=rng.uniform(25, 60, n),
        df0=df0, pf0=_pick(rng, n, {5: 0.8, 4: 0.2}),
        calf0=rng.uniform(0, 5 + 6 * (df0 - 3)), calf_max=rng.uniform(20, 35, n),
        odi0=rng.uniform(36, 64, n), odi_end=rng.uniform(0, 10, n),
        slump_until=rng.uniform(0.55, 1.0, n),
    )


def _progress(c: Cohort, pid: Array, day: Array, scale: Array | float = 1.0) -> Array:
    return np.clip(day / (c.recovery_days[pid] * scale), 0.0, 1.0)


def _ints(x: Array, low: int, high: int) -> Array:
    return np.clip(np.rint(x), low, high).astype(np.int16)


def symptom_values(c: Cohort, pid: Array, day: Array, flare: Array, rng: np.random.Generator) -> dict[str, Array]:
    """Diary (symptom_report) fields for patient `pid` on study `day`; `flare` = extra leg pain from a flare."""
    n = pid.size
    g = _progress(c, pid, day)
    rec_day = c.recovery_day[pid]
    after = day >= rec_day
    since = np.maximum(0, day - c.recovery_days[pid])
    leg_before = 0.6 + (c.leg0[pid] - 0.6) * (1.0 - g) ** 1.5 + rng.normal(0, 0.8, n) + flare
    leg_after = np.abs(rng.normal(0, 0.6, n))
    leg = np.where(after, _ints(leg_after, 0, 2), _ints(leg_before, 0, 10))
    back_mean = np.where(after, 0.4 * c.back0[pid] * np.exp(-since / 60.0),
                         c.back0[pid] * (1.0 - 0.6 * g) + 1.2 * np.sin(np.pi * g))
    back = _ints(back_mean + rng.normal(0, 0.8, n), 0, 10)
    # pain centralises: foot -> calf -> knee -> thigh -> buttock -> back; the baseline is exact (no noise)
    ext0 = c.extent0[pid]
    ext_noise = np.where(day >= 1, rng.normal(0, 0.35, n), 0.0)
    ext_before = np.clip(np.rint(ext0 * (1.0 - g) ** 0.8 + ext_noise), 1, ext0)
    ext_after = (rng.random(n) < 0.5 * np.exp(-since / 28.0)).astype(np.int64)
    extent = np.where(after, ext_after, ext_before).astype(np.int16)
    # paresthesia: numbness -> tingling -> none, monotone (no spurious spread), extent centralising too
    gp = _progress(c, pid, day, c.paresth_slowness[pid])
    level = c.paresth0[pid] * (1.0 - gp) ** 0.6
    paresth = np.where(level > 1.35, 2, np.where(level > 0.35, 1, 0)).astype(np.int16)
    pext = np.where(paresth > 0, np.clip(np.rint(c.pext0[pid] * (1.0 - 0.6 * gp)), 2, 6), -1).astype(np.int16)
    spasm = (rng.random(n) < 0.55 * (1.0 - g) + 0.03).astype(np.int16)
    walk = c.walk0[pid] + (c.walk_max[pid] - c.walk0[pid]) * g ** 1.2
    walk = np.where(rng.random(n) < 0.06, -1, np.clip(5 * np.rint(walk * np.exp(rng.normal(0, 0.2, n)) / 5), 0, 720))
    sit = c.sit0[pid] + (c.sit_max[pid] - c.sit0[pid]) * g ** 1.2
    sit = np.where(rng.random(n) < 0.06, -1, np.clip(5 * np.rint(sit * np.exp(rng.normal(0, 0.2, n)) / 5), 0, 720))
    gr_before = c.gr0[pid] - (c.gr0[pid] - 3) * g ** 0.8 + (flare > 0) + rng.normal(0, 0.5, n)
    gr_before = np.clip(np.rint(gr_before), np.where(day <= 0, 4, 3), 7)
    settled = (day - rec_day >= c.gr_settle[pid]) & (rng.random(n) < 0.85)
    gr = np.where(after, np.where(settled, 1, 2), gr_before).astype(np.int16)
    false = np.zeros(n, dtype=np.int16)
    bilateral = ((c.side[pid] == 2) & (g < 0.7)).astype(np.int16)
    return {
        "leg_pain_nrs": leg, "back_pain_nrs": back, "pain_extent": extent, "paresthesia": paresth,
        "paresthesia_extent": pext, "muscle_spasm": spasm,
        "walking_tolerance_min": walk.astype(np.int16), "sitting_tolerance_min": sit.astype(np.int16),
        "bladder_dysfunction": false, "bowel_dysfunction": false.copy(), "saddle_numbness": false.copy(),
        "bilateral_symptoms": bilateral, "global_recovery": gr,
    }


def assessment_values(c: Cohort, pid: Array, day: Array, rng: np.random.Generator) -> dict[str, Array]:
    """Clinician assessment fields for patient `pid` on study `day`."""
    n = pid.size
    t = c.recovery_days[pid]
    g = _progress(c, pid, day)
    after = day >= c.recovery_day[pid]
    slr_before = c.slr0[pid] + (88.0 - c.slr0[pid]) * g ** 0.9 + rng.normal(0, 4, n)
    slr_after = rng.choice(np.array([90, 85, 80]), size=n, p=[0.65, 0.25, 0.1])
    slr = np.where(after, slr_after, np.clip(5 * np.rint(slr_before / 5), 0, 90))
    # weakness is the last to improve: dorsiflexion is back to 5 only at 1.5 T
    df_gain = np.floor((5 - c.df0[pid]) * np.clip((day - 0.6 * t) / (0.9 * t), 0.0, 1.0))
    pf_gain = np.floor((5 - c.pf0[pid]) * np.clip((day - 0.3 * t) / (0.7 * t), 0.0, 1.0))
    pf = np.where(rng.random(n) < 0.05, -1, c.pf0[pid] + pf_gain)
    calf = c.calf0[pid] + (c.calf_max[pid] - c.calf0[pid]) * np.clip(day / (1.3 * t), 0.0, 1.0)
    calf = np.where(rng.random(n) < 0.1, -1, np.clip(np.rint(calf + rng.normal(0, 1.5, n)), 0, 100))
    odi = np.where(after, c.odi_end[pid] + rng.normal(0, 2, n),
                   c.odi0[pid] - (c.odi0[pid] - c.odi_end[pid]) * g ** 0.9 + rng.normal(0, 3, n))
    return {
        "slr_angle_deg": slr.astype(np.int16),
        "dorsiflexion_mrc": (c.df0[pid] + df_gain).astype(np.int16),
        "plantarflexion_mrc": pf.astype(np.int16),
        "calf_raise_count": calf.astype(np.int16),
        "odi_score": np.clip(2 * np.rint(odi / 2), 0, 100).astype(np.int16),
        "slump_test": np.where(after | (g >= c.slump_until[pid]), 1, 0).astype(np.int16),
    }
