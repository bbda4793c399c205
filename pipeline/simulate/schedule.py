"""When each patient's events happen: diaries, assessments, treatments, red flags, withdrawals.

Each function returns a *block*: a dict of equal-length numpy arrays, one row
per event, with the patient (`pid`), the event type code (`etype`, index into
pipeline.schema.EVENT_TYPES), the study `day`, the `occurred` instant and the
payload columns (integer codes, -1 = null; see patients.py). Rows are placed at
a local time of day chosen so that the SAP study day of the event equals `day`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.schema import EVENT_TYPES, FIELD_BY_NAME
from pipeline.simulate.clock import DAY, HOUR, MINUTE
from pipeline.simulate.patients import Cohort, assessment_values, symptom_values

Array = np.ndarray
Block = dict[str, Array]

ETYPE = {name: i for i, name in enumerate(EVENT_TYPES)}
MODALITY = {name: i for i, name in enumerate(FIELD_BY_NAME["modality"].choices)}
FLAG = {name: i for i, name in enumerate(FIELD_BY_NAME["flag"].choices)}

#: Red-flag scenarios: incident ones (study day >= 1) and prevalent ones (present at baseline, day 0).
RED_FLAG_KINDS = ("none", "bladder", "bowel", "saddle", "motor", "bilateral", "spread", "other",
                  "prevalent_bilateral", "prevalent_saddle")
_KIND = {name: i for i, name in enumerate(RED_FLAG_KINDS)}
INCIDENT_RATE = 0.03
PREVALENT_RATE = 0.006
_INCIDENT_MIX = {"bladder": 0.2, "bowel": 0.1, "saddle": 0.1, "motor": 0.25, "bilateral": 0.15, "spread": 0.1,
                 "other": 0.1}
#: Leg-pain rise after physiotherapy / dry needling / epidural: probability of a flare per session.
FLARE_PROB = {"physical_therapy": 0.15, "dry_needling": 0.45, "epidural_steroid": 0.3}


def at(c: Cohort, pid: Array, day: Array, tod: Array) -> Array:
    """Instant of study `day` at local time of day `tod` (seconds), never before the day's start."""
    return c.enrolled[pid] + day * DAY + (tod - c.enroll_tod[pid]) % DAY


def _block(etype: str, pid: Array, day: Array, occurred: Array, **payload: Array) -> Block:
    return {"pid": pid, "etype": np.full(pid.size, ETYPE[etype], dtype=np.int16), "day": day,
            "occurred": occurred, **payload}


@dataclass(frozen=True)
class RedFlagPlan:
    kind: Array  # index into RED_FLAG_KINDS per patient
    day: Array  # study day of the red flag (-1 for none)

    def patients(self, *kinds: str) -> Array:
        return np.flatnonzero(np.isin(self.kind, [_KIND[k] for k in kinds]))


def plan_red_flags(c: Cohort, rng: np.random.Generator) -> RedFlagPlan:
    """Which patients get which red flag, and when (incident ones in the symptomatic phase)."""
    n = len(c)
    u = rng.random(n)
    mix = np.asarray(list(_INCIDENT_MIX.values()))
    incident = np.asarray([_KIND[k] for k in _INCIDENT_MIX])[rng.choice(mix.size, size=n, p=mix)]
    prevalent = rng.choice([_KIND["prevalent_bilateral"], _KIND["prevalent_saddle"]], size=n)
    kind = np.select([u < INCIDENT_RATE, u < INCIDENT_RATE + PREVALENT_RATE], [incident, prevalent], _KIND["none"])
    # bilateral symptoms are no red flag for a patient with bilateral sciatica: give them another flag
    both_sides = c.side == 2
    kind = np.where(both_sides & (kind == _KIND["bilateral"]), _KIND["bladder"], kind)
    kind = np.where(both_sides & (kind == _KIND["prevalent_bilateral"]), _KIND["prevalent_saddle"], kind)
    is_prevalent = kind >= _KIND["prevalent_bilateral"]
    last = np.minimum(c.end_day - 1, np.maximum(4, c.recovery_day))
    day = rng.integers(3, np.maximum(4, last + 1))
    day = np.where(kind == _KIND["spread"], np.rint(0.5 * c.recovery_days), day).astype(np.int64)
    day = np.where(is_prevalent, 0, day)
    kind = np.where(~is_prevalent & ((day < 3) | (day > c.end_day - 1)), _KIND["none"], kind)  # outside follow-up
    return RedFlagPlan(kind=kind, day=np.where(kind > 0, day, -1))


def enrollments(c: Cohort) -> Block:
    pid = np.arange(len(c))
    return _block("enrollment", pid, np.zeros(len(c), dtype=np.int64), c.enrolled.copy(),
                  arm=c.arm.astype(np.int16), age_years=c.age.astype(np.int16),
                  sex=c.sex.astype(np.int16), affected_side=c.side.astype(np.int16))


def withdrawals(c: Cohort, rng: np.random.Generator) -> Block:
    pid = np.flatnonzero(c.withdraw_day >= 0)
    day = c.withdraw_day[pid]
    return _block("withdrawal", pid, day, at(c, pid, day, rng.integers(9 * HOUR, 17 * HOUR, pid.size)))


@dataclass(frozen=True)
class Treatments:
    block: Block
    flare_start: Array  # (patients, slots) study day of the treatment; leg pain is raised on days (start, end]
    flare_end: Array
    flare_bump: Array  # 0 = no flare


def treatments(c: Cohort, rng: np.random.Generator) -> Treatments:
    """Per patient a fixed set of treatment slots, most of them unused: drug, surgery, sessions."""
    n = len(c)
    cons = c.arm == 1
    rec = c.recovery_day

    def draw(low: int | Array, high: int | Array) -> Array:
        return rng.integers(low, np.maximum(np.asarray(high), np.asarray(low) + 1), size=n)

    slots: list[tuple[str, Array, Array]] = [
        ("nsaid", rng.random(n) < 0.6, draw(1, 8)),
        ("oral_steroid", rng.random(n) < 0.15, draw(3, 22)),
    ]
    surgery_day = draw(1, 15)
    early = ~cons & (rng.random(n) < 0.92) & (surgery_day < rec)  # recovered before surgery: not operated
    crossover = cons & (rec > 70) & (rng.random(n) < 0.4)  # conservative care failed
    slots.append(("surgery", early | crossover, np.where(crossover, draw(70, rec - 7), surgery_day)))
    pt_start = np.where(early, surgery_day + draw(7, 15), draw(3, 15))
    pt_sessions = rng.integers(2, 7, size=n)
    pt_any = rng.random(n) < np.where(cons, 0.85, 0.6)
    for k in range(6):
        slots.append(("physical_therapy", pt_any & (k < pt_sessions), pt_start + 7 * k + draw(-1, 2)))
    dn_first = draw(14, 43)
    dn_any = rng.random(n) < np.where(cons, 0.3, 0.05)
    slots.append(("dry_needling", dn_any, dn_first))
    slots.append(("dry_needling", dn_any & (rng.random(n) < 0.6), dn_first + draw(10, 15)))
    slots.append(("epidural_steroid", rng.random(n) < np.where(cons, 0.2, 0.03), draw(21, 71)))
    slots.append(("other", rng.random(n) < 0.05, draw(7, 91)))

    days = np.stack([d for _, _, d in slots], axis=1)
    valid = np.stack([v for _, v, _ in slots], axis=1)
    valid &= (days >= 1) & (days <= c.end_day[:, None]) & (days <= rec[:, None] + 14)
    modality = np.asarray([MODALITY[m] for m, _, _ in slots])
    flare_p = np.asarray([FLARE_PROB.get(m, 0.0) for m, _, _ in slots])
    flaring = valid & (days < rec[:, None] - 1) & (rng.random(days.shape) < flare_p)
    # an expected flare lasts 1-4 days: with diaries every 2-3 days and the SAP's resolution at the first
    # diary back at or below one noisy pre-treatment value, longer bumps resolve after day 7 more often than not
    duration = np.where(rng.random(days.shape) < 0.85, rng.integers(1, 5, days.shape), rng.integers(9, 21, days.shape))
    bump = np.where(flaring, rng.integers(2, 5, days.shape), 0)
    pid, slot = np.nonzero(valid)
    day = days[pid, slot]
    block = _block("treatment", pid, day, at(c, pid, day, rng.integers(8 * HOUR, 18 * HOUR, pid.size)),
                   modality=modality[slot].astype(np.int16))
    return Treatments(block, days, days + duration, bump)


def _flare_bump(t: Treatments, pid: Array, day: Array) -> Array:
    bump = np.zeros(pid.size, dtype=np.int64)
    for k in range(t.flare_bump.shape[1]):
        b = t.flare_bump[pid, k]
        on = (b > 0) & (day > t.flare_start[pid, k]) & (day <= t.flare_end[pid, k])
        bump = np.maximum(bump, np.where(on, b, 0))
    return bump


def diaries(c: Cohort, rng: np.random.Generator, t: Treatments, flags: RedFlagPlan) -> Block:
    """Patient diaries on ~diary_per_week days a week from day -14 to the end, plus the red-flag diaries."""
    lens = c.end_day + 15
    pid = np.repeat(np.arange(len(c)), lens)
    day = np.arange(pid.size) - np.repeat(np.cumsum(lens) - lens, lens) - 14
    # a day-0 diary anchors the baseline; one on the last day closes follow-up (so week 52 is reached)
    keep = (rng.random(pid.size) < c.diary_prob[pid]) | (day == 0) | (day == c.end_day[pid])
    pid, day = pid[keep], day[keep]
    flagged = np.flatnonzero(~np.isin(flags.kind, [_KIND["none"], _KIND["motor"], _KIND["other"]]))
    n_regular = pid.size
    pid = np.concatenate([pid, flagged])
    day = np.concatenate([day, flags.day[flagged]])
    values = symptom_values(c, pid, day, _flare_bump(t, pid, day), rng)
    extra = np.arange(n_regular, pid.size)
    kind = np.asarray(RED_FLAG_KINDS)[flags.kind[flagged]]
    for name, field in (("bladder", "bladder_dysfunction"), ("bowel", "bowel_dysfunction"),
                        ("saddle", "saddle_numbness"), ("prevalent_saddle", "saddle_numbness"),
                        ("bilateral", "bilateral_symptoms"), ("prevalent_bilateral", "bilateral_symptoms")):
        values[field][extra[kind == name]] = 1
    cauda = extra[kind == "bladder"]
    values["saddle_numbness"][cauda] = rng.random(cauda.size) < 0.5
    spread = extra[kind == "spread"]  # tingling suddenly down to the foot, with a leg-pain rise
    values["paresthesia"][spread] = 1
    values["paresthesia_extent"][spread] = 6
    values["pain_extent"][spread] = 6
    values["leg_pain_nrs"][spread] = np.minimum(10, values["leg_pain_nrs"][spread] + 4)
    values["global_recovery"][spread] = np.maximum(values["global_recovery"][spread], 4)
    tod = rng.integers(18 * HOUR, 23 * HOUR + 30 * MINUTE, pid.size)
    return _block("symptom_report", pid, day, at(c, pid, day, tod), **values)


def assessments(c: Cohort, rng: np.random.Generator, weeks: int, flags: RedFlagPlan) -> Block:
    """A baseline assessment in days -7..-1 and weekly clinician assessments (90 % attended)."""
    n = len(c)
    week = np.tile(np.arange(weeks + 1), n)
    pid = np.repeat(np.arange(n), weeks + 1)
    day = np.where(week == 0, rng.integers(-7, 0, pid.size), 7 * (week - 1) + rng.integers(1, 8, pid.size))
    keep = (day <= c.end_day[pid]) & ((week == 0) | (rng.random(pid.size) < 0.9))
    motor = flags.patients("motor")
    pid = np.concatenate([pid[keep], motor])
    day = np.concatenate([day[keep], flags.day[motor]])
    values = assessment_values(c, pid, day, rng)
    # progressive motor deficit: dorsiflexion drops two grades below baseline, then recovers a grade per 3 weeks
    decline_day = np.where(flags.kind == _KIND["motor"], flags.day, np.iinfo(np.int64).max)[pid]
    hit = day >= decline_day
    floor_grade = np.maximum(0, c.df0[pid] - 2) + (day - np.minimum(day, decline_day)) // 21
    df = values["dorsiflexion_mrc"]
    values["dorsiflexion_mrc"] = np.where(hit, np.minimum(df, floor_grade), df).astype(np.int16)
    tod = rng.integers(8 * HOUR + 30 * MINUTE, 17 * HOUR, pid.size)
    return _block("assessment", pid, day, at(c, pid, day, tod), **values)


def red_flag_events(c: Cohort, rng: np.random.Generator, flags: RedFlagPlan) -> tuple[Block, Block]:
    """Clinician red_flag events, and the emergency surgery that follows a bladder (cauda equina) flag."""
    reported = {"bladder": ("bladder_dysfunction", 1.0), "bowel": ("bowel_dysfunction", 1.0),
                "saddle": ("saddle_anesthesia", 1.0), "motor": ("progressive_motor_deficit", 0.6),
                "bilateral": ("bilateral_symptoms", 0.5), "other": ("other", 1.0),
                "prevalent_saddle": ("saddle_anesthesia", 1.0)}
    pids, codes = [], []
    for kind, (flag, prob) in reported.items():
        p = flags.patients(kind)
        p = p[rng.random(p.size) < prob]
        pids.append(p)
        codes.append(np.full(p.size, FLAG[flag], dtype=np.int16))
    pid = np.concatenate(pids)
    day = flags.day[pid]
    # a prevalent flag is found at the randomisation visit, before randomisation
    tod = np.where(day == 0, c.enroll_tod[pid] - rng.integers(10, 60, pid.size) * MINUTE,
                   rng.integers(8 * HOUR, 20 * HOUR, pid.size))
    occurred = np.where(day == 0, c.enrolled[pid] - (c.enroll_tod[pid] - tod), at(c, pid, day, tod))
    flag_block = _block("red_flag", pid, day, occurred, flag=np.concatenate(codes))
    cauda = flags.patients("bladder")
    cauda = cauda[flags.day[cauda] + 1 <= c.end_day[cauda]]
    sday = flags.day[cauda] + 1
    surgery = _block("treatment", cauda, sday, at(c, cauda, sday, rng.integers(8 * HOUR, 18 * HOUR, cauda.size)),
                     modality=np.full(cauda.size, MODALITY["surgery"], dtype=np.int16))
    return flag_block, surgery
