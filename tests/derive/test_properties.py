"""Laws of the derivations (hypothesis): delivery order and grouping do not matter; as-of after the
last ingestion equals no as-of."""

from __future__ import annotations

import random
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import Paths
from pipeline.derive.api import derive_in_memory
from pipeline.derive.build import TABLES

from .factories import INGESTED, STUDY, at, derive, enroll, ev, write_warehouse

#: the SAP tables that depend on the events only (the data-quality tables describe the deliveries)
CLINICAL = [t for t in TABLES if not t.startswith("dq_")]
EXTENTS = ["none", "back", "buttock", "thigh", "knee", "calf", "foot"]
SETTINGS = settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@st.composite
def observation(draw: st.DrawFn, event_id: str, patient: dict[str, Any]) -> dict[str, Any]:
    when = at(draw(st.integers(-16, 40)), hours=draw(st.integers(0, 23)))
    common = {"patient_id": patient["patient_id"], "site_id": patient["site_id"]}
    kind = draw(st.sampled_from(["symptom_report", "symptom_report", "assessment", "treatment", "red_flag"]))
    if kind == "symptom_report":
        paresthesia = draw(st.sampled_from(["none", "tingling", "numbness"]))
        return ev(event_id, kind, when, **common, leg_pain_nrs=draw(st.integers(0, 10)),
                  back_pain_nrs=draw(st.integers(0, 10)), pain_extent=draw(st.sampled_from(EXTENTS)),
                  paresthesia=paresthesia, paresthesia_extent=draw(st.sampled_from([None, *EXTENTS])),
                  walking_tolerance_min=draw(st.one_of(st.none(), st.integers(0, 60))),
                  global_recovery=draw(st.one_of(st.none(), st.integers(1, 7))),
                  bladder_dysfunction=draw(st.booleans()), bilateral_symptoms=draw(st.booleans()))
    if kind == "assessment":
        return ev(event_id, kind, when, **common, dorsiflexion_mrc=draw(st.integers(2, 5)),
                  plantarflexion_mrc=draw(st.one_of(st.none(), st.integers(2, 5))),
                  slr_angle_deg=draw(st.integers(20, 90)), calf_raise_count=draw(st.integers(0, 20)))
    if kind == "treatment":
        return ev(event_id, kind, when, **common, modality=draw(st.sampled_from(["nsaid", "dry_needling"])))
    return ev(event_id, kind, when, **common, flag=draw(st.sampled_from(["other", "saddle_anesthesia"])))


@st.composite
def event_logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for p in range(draw(st.integers(1, 3))):
        patient: dict[str, Any] = {"patient_id": f"P{p}", "site_id": draw(st.sampled_from(["S1", "S2"]))}
        events.append(enroll(patient["patient_id"], site_id=patient["site_id"],
                             arm=draw(st.sampled_from(["surgery", "conservative"])),
                             side=draw(st.sampled_from(["left", "bilateral"]))))
        observations = [draw(observation(f"P{p}-{i}", patient)) for i in range(draw(st.integers(1, 10)))]
        events += observations
        # corrections, often several of one target: the target's payload with another leg pain or time;
        # their recorded_at are all distinct (a tie would be broken by ingestion, which redelivery changes)
        for i, target in enumerate(draw(st.lists(st.sampled_from(observations[:2]), max_size=3))):
            fixed = {k: v for k, v in target.items() if k not in ("event_id", "event_type", "recorded_at")}
            fixed["occurred_at"] = target["occurred_at"] + timedelta(hours=draw(st.integers(-30, 30)))
            if target["event_type"] == "symptom_report":
                fixed["leg_pain_nrs"] = draw(st.integers(0, 10))
            events.append(ev(f"P{p}-c{i}", "correction", fixed.pop("occurred_at"), target_event_id=target["event_id"],
                             recorded=at(60, hours=i), **{k: v for k, v in fixed.items()
                                                            if k not in ("site_id", "patient_id")},
                             patient_id=patient["patient_id"], site_id=patient["site_id"]))
        for i, target in enumerate(draw(st.lists(st.sampled_from(observations), max_size=2))):
            events.append(ev(f"P{p}-x{i}", "retraction", at(61), target_event_id=target["event_id"], **patient))
        if draw(st.booleans()):
            events.append(ev(f"P{p}-w", "withdrawal", at(draw(st.integers(1, 40))), **patient))
    return events


def redelivered(events: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The same events in another order, cut into other batches ingested at other instants."""
    rng = random.Random(seed)
    shuffled = events[:]
    rng.shuffle(shuffled)
    cuts = sorted(rng.sample(range(1, len(shuffled)), k=min(3, len(shuffled) - 1))) if len(shuffled) > 1 else []
    out, batch = [], 0
    for i, e in enumerate(shuffled):
        batch += i in cuts
        out.append({**e, "batch_id": f"x{batch}", "ingested_at": INGESTED + timedelta(days=batch)})
    return out


def clinical_tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[dict[str, Any]]]:
    return {t: sorted(con.sql(f"select * from {t}").to_arrow_table().to_pylist(), key=repr) for t in CLINICAL}


@SETTINGS
@given(events=event_logs(), seed=st.integers(0, 2**16))
def test_delivery_order_and_grouping_do_not_change_the_derived_tables(events: list[dict[str, Any]],
                                                                      seed: int) -> None:
    assert clinical_tables(derive(events)) == clinical_tables(derive(redelivered(events, seed)))


@SETTINGS
@given(events=event_logs(), seed=st.integers(0, 2**16), days_after=st.integers(0, 400))
def test_as_of_after_the_last_ingestion_equals_no_as_of(events: list[dict[str, Any]], seed: int,
                                                        days_after: int) -> None:
    delivered = redelivered(events, seed)
    with tempfile.TemporaryDirectory() as tmp:
        paths = Paths(Path(tmp) / "study.toml", Path(tmp) / "landing", Path(tmp) / "warehouse")
        write_warehouse(paths.warehouse, delivered)
        last = max(e["ingested_at"] for e in delivered)
        now = derive_in_memory(paths, STUDY)
        later = derive_in_memory(paths, STUDY, as_of=last + timedelta(days=days_after))
        for table in TABLES:
            assert sorted(later.sql(f"select * from {table}").to_arrow_table().to_pylist(), key=repr) == \
                sorted(now.sql(f"select * from {table}").to_arrow_table().to_pylist(), key=repr), table
        now.close()
        later.close()
