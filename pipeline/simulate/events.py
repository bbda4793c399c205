"""The clean event rows of a simulated cohort, as one Arrow table.

`build_events` schedules every patient's events (schedule.py), adds the
recording lag, the corrections and retractions a real site sends, harmless
comments, event ids, and renders it all as DTS text (timestamps with offsets,
enums as their names). Besides the DTS columns (pipeline.schema.ALL_COLUMNS, in
that order) the table carries helper columns starting with `_` that the writer
drops: `_site` (site index), `_key` (delivery instant: the recorded_at, except
that data recorded before randomisation is delivered with the enrollment) and
`_occurred` / `_recorded` (epoch seconds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.schema import ALL_COLUMNS, EVENT_TYPES, FIELD_BY_NAME
from pipeline.simulate import schedule
from pipeline.simulate.clock import DAY, HOUR, MINUTE, amsterdam_offset, render
from pipeline.simulate.options import SimulationOptions
from pipeline.simulate.patients import ARMS, Cohort
from pipeline.simulate.schedule import ETYPE, Block

Array = np.ndarray

COMMENTS: dict[str, tuple[str, ...]] = {
    "symptom_report": ("Bad night, little sleep", "Took extra paracetamol today", "Long car trip today",
                       "Worked a full day", "Entered from the paper diary", "Walked the dog twice"),
    "assessment": ("Assessed by the covering physiotherapist", "Patient arrived late; shortened exam",
                   "Telephone follow-up, exam at next visit", "Patient in good spirits"),
    "treatment": ("First session of the series", "Referred by the general practitioner",
                  "Home exercise programme handed out", "Tolerated well"),
    "red_flag": ("Urgent MRI requested", "Referred to the emergency department",
                 "Neurosurgeon informed the same day", "Patient advised to return if worse"),
    "withdrawal": ("Withdrew consent", "Moved out of the region", "Lost to follow-up",
                   "No longer wishes to keep the diary"),
    "correction": ("Corrected data entry error", "Value transcribed wrongly from the paper form",
                   "Corrected after source data verification"),
    "retraction": ("Diary submitted twice; keeping the first entry", "Entered twice by mistake",
                   "Duplicate entry found at monitoring visit"),
}
_COMMENT_TEXT = tuple(text for texts in COMMENTS.values() for text in texts)
_COMMENT_START = dict(zip(COMMENTS, np.cumsum([0] + [len(t) for t in COMMENTS.values()])[:-1].tolist(), strict=True))
#: Share of rows with a (harmless) comment: a clinician always says why a flag was raised or a patient left.
COMMENT_RATE = {"symptom_report": 0.015, "assessment": 0.015, "treatment": 0.015, "red_flag": 1.0, "withdrawal": 1.0}
CORRECTION_RATE = 0.004
RETRACTION_RATE = 0.002
LATE_RATE = {"symptom_report": 0.003, "assessment": 0.02, "treatment": 0.02}
_CORRECTED = [ETYPE[t] for t in ("enrollment", "symptom_report", "assessment")]  # rows that may get a typo
_ENTERED_TWICE = [ETYPE[t] for t in ("symptom_report", "treatment")]  # rows that may be sent twice, then retracted
_FLAG_BOOLS = ("bladder_dysfunction", "bowel_dysfunction", "saddle_numbness", "bilateral_symptoms")


@dataclass(frozen=True)
class CohortEvents:
    table: pa.Table
    late_entries: int


def _concat(blocks: list[Block]) -> Block:
    keys = list(dict.fromkeys(k for b in blocks for k in b))
    return {k: np.concatenate([b[k] if k in b else np.full(b["pid"].size, -1, np.int16) for b in blocks])
            for k in keys}


def _comments(etype: str, rng: np.random.Generator, n: int, rate: float) -> Array:
    """Comment codes (index into the comment texts, -1 = none) for `n` rows of a type, each present at `rate`."""
    if etype not in COMMENTS:
        return np.full(n, -1, np.int16)
    pick = _COMMENT_START[etype] + rng.integers(0, len(COMMENTS[etype]), n)
    return np.where(rng.random(n) < rate, pick, -1).astype(np.int16)


def _lags(rows: Block, rng: np.random.Generator) -> Array:
    """recorded_at - occurred_at, seconds, by event type (diaries sync within minutes, clinicians within hours)."""
    et = rows["etype"]
    n = et.size
    lag = np.select(
        [et == ETYPE["symptom_report"], et == ETYPE["enrollment"], et == ETYPE["red_flag"]],
        [30 + rng.exponential(25 * MINUTE, n), rng.uniform(2 * MINUTE, 30 * MINUTE, n),
         rng.uniform(5 * MINUTE, 90 * MINUTE, n)],
        rng.uniform(0.5 * HOUR, 30 * HOUR, n),
    )
    for etype, rate in LATE_RATE.items():
        late = (et == ETYPE[etype]) & (rng.random(n) < rate)
        lag = np.where(late, rng.uniform(8 * DAY, 30 * DAY, n), lag)
    return lag.astype(np.int64)


def _typo(rows: Block, idx: Array) -> None:
    """Put a plausible entry error into rows `idx` (their correction carries the true values)."""
    et = rows["etype"][idx]
    walk = rows["walking_tolerance_min"][idx]
    back = rows["back_pain_nrs"][idx]
    diary = et == ETYPE["symptom_report"]
    rows["walking_tolerance_min"][idx] = np.where(diary & (walk >= 10), walk // 10, walk)  # a dropped zero
    rows["back_pain_nrs"][idx] = np.where(diary & (walk < 10), (back + 3) % 11, back)
    odi = rows["odi_score"][idx]
    swapped = (odi % 10) * 10 + odi // 10  # digits swapped
    exam = et == ETYPE["assessment"]
    rows["odi_score"][idx] = np.where(exam & (odi >= 0), np.where(swapped != odi, swapped, (odi + 10) % 100), odi)
    age = rows["age_years"][idx]
    enrol = et == ETYPE["enrollment"]
    rows["age_years"][idx] = np.where(enrol, np.where(age + 10 <= 80, age + 10, age - 10), age)


def _corrections_and_retractions(c: Cohort, rows: Block, rng: np.random.Generator) -> Block:
    """Corrections (true values re-sent after a typo) and retractions (of a diary or treatment entered twice)."""
    n = rows["pid"].size
    settled = rows["day"] <= c.end_day[rows["pid"]] - 15  # so the follow-up row still falls in follow-up
    no_flag = np.logical_and.reduce([rows[f] != 1 for f in _FLAG_BOOLS])
    candidates = np.flatnonzero(settled & no_flag & np.isin(rows["etype"], _CORRECTED))
    targets = candidates[rng.random(candidates.size) < CORRECTION_RATE]
    corr = {k: v[targets].copy() for k, v in rows.items()}
    _typo(rows, targets)
    corr["etype"][:] = ETYPE["correction"]
    corr["target"] = targets
    corr["recorded"] = rows["recorded"][targets] + rng.integers(1 * DAY, 14 * DAY, targets.size)
    corr["comment"] = _comments("correction", rng, targets.size, 1.0)

    entered_twice = np.flatnonzero(settled & no_flag & np.isin(rows["etype"], _ENTERED_TWICE))
    sources = entered_twice[rng.random(entered_twice.size) < RETRACTION_RATE]
    twice = {k: v[sources].copy() for k, v in rows.items()}
    twice["occurred"] = twice["occurred"] + rng.integers(1 * MINUTE, 20 * MINUTE, sources.size)
    twice["recorded"] = np.maximum(twice["recorded"], twice["occurred"]) + rng.integers(1, 5 * MINUTE, sources.size)
    twice["comment"] = np.full(sources.size, -1, np.int16)
    copies = n + targets.size + np.arange(sources.size)
    recorded = twice["recorded"] + rng.integers(1 * DAY, 10 * DAY, sources.size)
    retr = {
        "pid": twice["pid"], "etype": np.full(sources.size, ETYPE["retraction"], np.int16),
        "day": twice["day"], "occurred": recorded - rng.integers(1 * MINUTE, 30 * MINUTE, sources.size),
        "recorded": recorded, "target": copies, "comment": _comments("retraction", rng, sources.size, 1.0),
    }
    return _concat([corr, twice, retr])


def _schedule(c: Cohort, options: SimulationOptions, rng: np.random.Generator) -> Block:
    flags = schedule.plan_red_flags(c, rng)
    treat = schedule.treatments(c, rng)
    red_flags, emergency_surgery = schedule.red_flag_events(c, rng, flags)
    blocks = [
        ("enrollment", schedule.enrollments(c)),
        ("symptom_report", schedule.diaries(c, rng, treat, flags)),
        ("assessment", schedule.assessments(c, rng, options.weeks, flags)),
        ("treatment", treat.block), ("treatment", emergency_surgery), ("red_flag", red_flags),
        ("withdrawal", schedule.withdrawals(c, rng)),
    ]
    for etype, b in blocks:
        b["comment"] = _comments(etype, rng, b["pid"].size, COMMENT_RATE.get(etype, 0.0))
        b["target"] = np.full(b["pid"].size, -1, np.int64)
    rows = _concat([b for _, b in blocks])
    rows["recorded"] = rows["occurred"] + _lags(rows, rng)
    return _concat([rows, _corrections_and_retractions(c, rows, rng)])


def _text(codes: Array, choices: tuple[str, ...] | list[str]) -> pa.Array:
    return pc.take(pa.array(list(choices), pa.string()), pa.array(codes, mask=codes < 0))


def _patient_ids(c: Cohort, site_ids: tuple[str, ...]) -> list[str]:
    width = max(4, len(str(int(c.number.max(initial=0)))))
    return [f"{site_ids[s]}-P{num:0{width}d}" for s, num in zip(c.site.tolist(), c.number.tolist(), strict=True)]


def _composite(*keys: Array) -> Array:
    """One int64 sort key from non-negative-rangeable integer keys, most significant first (ties keep order)."""
    out = np.zeros(keys[0].size, np.int64)
    bits = 0
    for k in reversed(keys):
        k = k.astype(np.int64) - (int(k.min()) if k.size else 0)
        width = max(1, int(k.max(initial=0)).bit_length())
        out |= k << bits
        bits += width
    if bits > 63:
        raise OverflowError("sort keys too wide for one int64")
    return out


def _in_delivery_order(c: Cohort, rows: Block) -> tuple[Block, Array]:
    """Rows sorted by site, delivery instant and recording instant (targets re-pointed); also the delivery key.

    The delivery key is the recorded_at, except that data recorded before the randomisation
    is delivered with the enrollment, right after it (a site sends no data of patients not
    yet randomised). So any prefix of a site's rows holds the enrollment of every patient in it.
    """
    pid, et = rows["pid"], rows["etype"]
    enrolled_recorded = np.full(len(c), np.iinfo(np.int64).max)
    first = et == ETYPE["enrollment"]
    enrolled_recorded[pid[first]] = rows["recorded"][first]
    key = np.maximum(rows["recorded"], enrolled_recorded[pid])
    order = np.argsort(_composite(c.site[pid], key, ~first, rows["recorded"]), kind="stable")
    out = {k: v[order] for k, v in rows.items()}
    position = np.empty(order.size, np.int64)
    position[order] = np.arange(order.size)
    target = out["target"]
    out["target"] = np.where(target >= 0, position[np.maximum(target, 0)], -1)
    return out, key[order]


def _sequence(pid: Array, recorded: Array) -> pa.Array:
    """Six-digit number of each event among its patient's events, in recording order (000001, ...)."""
    n = pid.size
    by_patient = np.argsort(_composite(pid, recorded), kind="stable")
    starts = np.flatnonzero(np.diff(pid[by_patient], prepend=-1) != 0)
    seq = np.empty(n, np.int64)
    seq[by_patient] = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n))) + 1
    return pc.utf8_lpad(pc.cast(pa.array(seq), pa.string()), 6, "0")


def build_events(c: Cohort, options: SimulationOptions, site_ids: tuple[str, ...],
                 rng: np.random.Generator) -> CohortEvents:
    """All clean events of the cohort, one row per event, sorted by site and delivery instant."""
    rows = _schedule(c, options, rng)
    limit = options.reference_s - 60
    rows["recorded"] = np.minimum(rows["recorded"], limit)
    rows["occurred"] = np.minimum(rows["occurred"], rows["recorded"])
    rows, key = _in_delivery_order(c, rows)
    pid, et = rows["pid"], rows["etype"]
    late = int(np.count_nonzero((rows["recorded"] - rows["occurred"] > 7 * DAY)
                                & (et != ETYPE["correction"]) & (et != ETYPE["retraction"])))
    n = pid.size
    patient_col = pc.take(pa.array(_patient_ids(c, site_ids)), pa.array(pid))
    event_ids = pc.binary_join_element_wise(patient_col, _sequence(pid, rows["recorded"]), "-E")
    # offsets: sites are in the Netherlands; the diary app stamps recorded_at in UTC; some phones abroad
    u = rng.random(n)
    diary = et == ETYPE["symptom_report"]
    occ_off = np.where(u < 0.1, 0, np.where(diary & (u > 0.95), -300, amsterdam_offset(rows["occurred"])))
    server_side = np.isin(et, [ETYPE["symptom_report"], ETYPE["correction"], ETYPE["retraction"]])
    rec_off = np.where(server_side | (rng.random(n) < 0.15), 0, amsterdam_offset(rows["recorded"]))

    columns: dict[str, pa.Array] = {
        "event_id": event_ids,
        "event_type": _text(et, EVENT_TYPES),
        "site_id": _text(c.site[pid], site_ids),
        "patient_id": patient_col,
        "occurred_at": render(rows["occurred"], occ_off),
        "recorded_at": render(rows["recorded"], rec_off),
        "comment": _text(rows["comment"], _COMMENT_TEXT),
        "target_event_id": pc.take(event_ids, pa.array(rows["target"], mask=rows["target"] < 0)),
    }
    for name in ALL_COLUMNS:
        if name in columns:
            continue
        field = FIELD_BY_NAME[name]
        codes = rows.get(name, np.full(n, -1, np.int16))
        if field.kind == "int":
            columns[name] = pa.array(codes.astype(np.int32), mask=codes < 0)
        elif field.kind == "bool":
            columns[name] = pa.array(codes == 1, mask=codes < 0)
        else:
            columns[name] = _text(codes, ARMS if name == "arm" else field.choices)
    columns["_site"] = pa.array(c.site[pid].astype(np.int16))
    columns["_key"] = pa.array(key)
    columns["_occurred"] = pa.array(rows["occurred"])
    columns["_recorded"] = pa.array(rows["recorded"])
    return CohortEvents(pa.table(columns), late)
