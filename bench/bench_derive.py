"""Benchmark: `derive` on millions of simulated events against a raw DuckDB single pass.

Writes a synthetic warehouse (event log + ledger, EVENT_SCHEMA, weekly batches
per site), then times
  raw     one DuckDB pass reading the event log and averaging leg pain per patient and week
  derive  pipeline.derive.api.derive (every SAP table into trial.duckdb, derive alerts)
and prints both and the ratio (target: derive <= 3 x raw). The raw pass reads the log through
`events_sql` (only committed batches, each row looked up in the ledger; derive lists the
committed files once instead), and the bare Parquet read is printed too: the ratio against it
is the one that does not depend on how committed rows are found.
Both run in this process with imports warm (lifelines alone takes seconds to import).

    uv run --frozen python -m bench.bench_derive --events 5000000 --work bench/out/derive
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.config import Paths, Site, Study
from pipeline.schema import EVENT_SCHEMA, EXTENT_LEVELS
from pipeline.store.warehouse import BATCH_SCHEMA, MEMORY_LIMIT, configure, events_sql

DAY_US = 86_400_000_000
START = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
EVENTS_PER_PATIENT = 215  # diaries, assessments, treatments, flags, corrections, ...
#: each site delivers one file per this many days (a large log is a few dozen files, as after a
#: few ingests of a whole study; weekly files would make the bench a test of file listing)
DELIVERY_DAYS = 182


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    text = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, text, "")


def simulate(n_events: int, n_sites: int, seed: int) -> tuple[pa.Table, Study]:
    rng = np.random.default_rng(seed)
    n_patients = max(n_events // EVENTS_PER_PATIENT, 10)
    sites = np.array([f"S{i:02d}" for i in range(1, n_sites + 1)])
    study = Study("BENCH", ("surgery", "conservative"), tuple(Site(s) for s in sites))

    patient_site = rng.integers(0, n_sites, n_patients)
    surgery = rng.random(n_patients) < 0.5
    enrolled = START + rng.integers(0, 300, n_patients) * DAY_US + rng.integers(8, 17, n_patients) * 3_600_000_000
    follow_up = rng.integers(150, 300, n_patients)
    tau = np.where(surgery, 3.0, 10.0) * 7 * rng.uniform(0.6, 1.4, n_patients)  # days
    base_pain = rng.integers(6, 10, n_patients)

    # diaries: almost daily from day -7
    span = follow_up + 8
    patient = np.repeat(np.arange(n_patients), span)
    day = np.arange(patient.size) - np.repeat(np.cumsum(span) - span, span) - 7
    keep = rng.random(patient.size) < 0.92
    patient, day = patient[keep], day[keep]
    n = patient.size
    t = np.maximum(day, 0).astype(float)
    expected = base_pain[patient] * np.exp(-t / tau[patient])
    pain = np.clip(np.round(expected + rng.normal(0, 0.8, n)), 0, 10)
    occurred = enrolled[patient] + day * DAY_US + rng.integers(0, 12, n) * 3_600_000_000
    extent = np.clip(np.round(expected * 0.6 + rng.normal(0, 0.3, n)), 0, 6).astype(int)
    # paresthesia recovers monotonically (no day-to-day noise): noise made it reappear and spread
    # distally between diaries, i.e. a PARESTHESIA_SPREAD red flag in about half of the patients
    paresth = np.clip(np.round(expected / 4), 0, 2).astype(int)
    paresth_extent = np.clip(np.round(expected * 0.6) + 1, 0, 6).astype(int)
    gpe = np.clip(np.round(1 + pain * 0.6 + rng.normal(0, 0.6, n)), 1, 7)
    diaries = {
        "event_type": np.full(n, "symptom_report"), "patient": patient, "occurred": occurred,
        "leg_pain_nrs": pain, "back_pain_nrs": np.clip(pain - 1 + rng.integers(0, 3, n), 0, 10),
        "pain_extent": np.array(EXTENT_LEVELS)[extent],
        "paresthesia": np.array(["none", "tingling", "numbness"])[paresth],
        "paresthesia_extent": np.where(paresth > 0, np.array(EXTENT_LEVELS)[paresth_extent], None),
        "walking_tolerance_min": np.clip(np.round(120 - pain * 10 + rng.normal(0, 10, n)), 0, 720),
        "global_recovery": gpe,
        "bilateral_symptoms": rng.random(n) < 2e-5,  # red flags are rare: ~0.5 % of patients each
        "bladder_dysfunction": rng.random(n) < 2e-5,
    }

    # assessments every four weeks, treatments, withdrawals
    a_patient = np.repeat(np.arange(n_patients), follow_up // 28 + 1)
    a_day = (np.arange(a_patient.size) - np.repeat(np.cumsum(follow_up // 28 + 1) - (follow_up // 28 + 1),
                                                   follow_up // 28 + 1)) * 28 - 1
    m = a_patient.size
    weak = rng.random(n_patients) < 0.005
    assessments = {
        "event_type": np.full(m, "assessment"), "patient": a_patient,
        "occurred": enrolled[a_patient] + a_day * DAY_US + 3_600_000_000,
        # a rare progressive motor deficit (0.5 % of patients) instead of random 1-3 grade drops
        "dorsiflexion_mrc": np.where(weak[a_patient] & (a_day >= 28), 3, 5),
        "plantarflexion_mrc": np.full(m, 5), "slr_angle_deg": rng.integers(30, 91, m),
        "calf_raise_count": rng.integers(0, 30, m), "odi_score": rng.integers(0, 60, m),
    }
    t_patient = np.repeat(np.arange(n_patients), 3)
    treatments = {
        "event_type": np.full(t_patient.size, "treatment"), "patient": t_patient,
        "occurred": enrolled[t_patient] + rng.integers(1, 60, t_patient.size) * DAY_US + 7_200_000_000,
        "modality": rng.choice(["physical_therapy", "dry_needling", "nsaid", "surgery"], t_patient.size),
    }
    w_patient = np.flatnonzero(rng.random(n_patients) < 0.05)
    withdrawals = {
        "event_type": np.full(w_patient.size, "withdrawal"), "patient": w_patient,
        "occurred": enrolled[w_patient] + rng.integers(10, 100, w_patient.size) * DAY_US,
    }
    enrollments = {
        "event_type": np.full(n_patients, "enrollment"), "patient": np.arange(n_patients), "occurred": enrolled,
        "arm": np.where(surgery, "surgery", "conservative"), "age_years": rng.integers(18, 80, n_patients),
        "affected_side": rng.choice(["left", "right"], n_patients),
    }
    parts = [enrollments, diaries, assessments, treatments, withdrawals]
    table = pa.concat_tables([_to_table(p) for p in parts], promote_options="permissive")
    table = _add_corrections(table, rng)
    return _envelope(table, patient_site, sites, rng), study


def _to_table(columns: dict[str, np.ndarray]) -> pa.Table:
    return pa.table({k: pa.array(v) for k, v in columns.items()})


def _add_corrections(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    n = table.num_rows
    table = table.append_column("event_no", pa.array(np.arange(n)))
    is_diary = pc.equal(table["event_type"], "symptom_report").to_numpy(zero_copy_only=False)
    picked = np.flatnonzero(is_diary & (rng.random(n) < 0.003))
    corrections = table.take(picked)
    corrections = corrections.set_column(
        corrections.schema.get_field_index("event_type"), "event_type", pa.array(["correction"] * picked.size))
    corrections = corrections.append_column("target_no", pa.array(picked))
    corrections = corrections.set_column(
        corrections.schema.get_field_index("event_no"), "event_no", pa.array(np.arange(n, n + picked.size)))
    retracted = np.flatnonzero(is_diary & (rng.random(n) < 0.0005))
    retractions = pa.table({
        "event_type": pa.array(["retraction"] * retracted.size), "patient": table["patient"].take(retracted),
        "occurred": table["occurred"].take(retracted), "target_no": pa.array(retracted),
        "event_no": pa.array(np.arange(n + picked.size, n + picked.size + retracted.size)),
    })
    return pa.concat_tables([table, corrections, retractions], promote_options="permissive")


def _envelope(table: pa.Table, patient_site: np.ndarray, sites: np.ndarray, rng: np.random.Generator) -> pa.Table:
    n = table.num_rows
    occurred = table["occurred"].to_numpy()
    edit = pc.is_in(table["event_type"], pa.array(["correction", "retraction"])).to_numpy(zero_copy_only=False)
    recorded = occurred + rng.integers(0, 36, n) * 3_600_000_000 + edit * 5 * DAY_US
    period = DELIVERY_DAYS * DAY_US
    ingested = (recorded // period + 1) * period + DAY_US  # one delivery per site and period
    patient = table["patient"].to_numpy()
    target = table["target_no"].to_numpy(zero_copy_only=False) if "target_no" in table.column_names else None
    columns: dict[str, pa.Array] = {
        "event_id": _ids("E", table["event_no"].to_numpy(), 9),
        "event_type": table["event_type"],
        "site_id": pa.array(sites[patient_site[patient]]),
        "patient_id": _ids("P", patient, 6),
        "occurred_at": pa.array(occurred, pa.timestamp("us", tz="UTC")),
        "recorded_at": pa.array(recorded, pa.timestamp("us", tz="UTC")),
        "target_event_id": pc.if_else(pc.is_null(table["target_no"]), pa.scalar(None, pa.string()),
                                      _ids("E", np.nan_to_num(target.astype(float), nan=0).astype(np.int64), 9))
        if target is not None else pa.nulls(n, pa.string()),
        "ingested_at": pa.array(ingested, pa.timestamp("us", tz="UTC")),
        "schema_version": pa.array(np.ones(n, dtype=np.int32)),
        "warnings": pa.array([[]] * n, pa.list_(pa.string())),
    }
    out = []
    for field in EVENT_SCHEMA:
        if field.name in columns:
            out.append(pc.cast(columns[field.name], field.type))
        elif field.name in table.column_names:
            out.append(pc.cast(table[field.name], field.type))
        else:
            out.append(pa.nulls(n, field.type))
    events = pa.Table.from_arrays(out, schema=EVENT_SCHEMA)
    week = pc.cast(pa.array(ingested // period), pa.string())
    batch = pc.binary_join_element_wise(events["site_id"], week, "-")
    return events.set_column(EVENT_SCHEMA.get_field_index("batch_id"), "batch_id", batch)


def write_warehouse(events: pa.Table, warehouse: Path) -> int:
    """Write the events as one Parquet file per batch, and the ledger; returns the number of files."""
    con = duckdb.connect()
    con.register("simulated", events)
    batches = con.sql("""
        select batch_id, any_value(site_id) as site_id, batch_id || '.csv' as source_file, batch_id as source_sha256,
               'ingested' as status, []::varchar[] as file_rules, count(*) as received, count(*) as accepted,
               0::bigint as rejected, 0::bigint as duplicates, 0::bigint as warnings,
               []::varchar[] as unknown_columns, any_value(ingested_at) as ingested_at
        from simulated group by batch_id
    """).to_arrow_table()
    batches = pa.Table.from_arrays(
        [batches[f.name].cast(f.type) if f.name in batches.column_names else pa.nulls(batches.num_rows, f.type)
         for f in BATCH_SCHEMA],
        schema=BATCH_SCHEMA,
    )
    (warehouse / "batches").mkdir(parents=True, exist_ok=True)
    ordered = events.sort_by("batch_id")
    bounds = np.flatnonzero(np.r_[True, pc.not_equal(ordered["batch_id"][1:], ordered["batch_id"][:-1])
                                  .to_numpy(zero_copy_only=False), True])
    for start, end in itertools.pairwise(bounds):
        part = ordered.slice(start, end - start)
        batch_id, site = part["batch_id"][0].as_py(), part["site_id"][0].as_py()
        folder = warehouse / "events" / f"site={site}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, folder / f"{batch_id}.parquet", compression="zstd")
        row = batches.filter(pc.equal(batches["batch_id"], batch_id))
        pq.write_table(row, warehouse / "batches" / f"{batch_id}.parquet")
    con.close()
    return batches.num_rows


#: mean leg pain per patient and calendar week
CALENDAR_WEEK = """
    select count(*) from (
        select site_id, patient_id, date_trunc('week', occurred_at) as week, avg(leg_pain_nrs) as leg_pain
        from ({source})
        where event_type = 'symptom_report'
        group by all
    )
"""
#: mean leg pain per patient and study week (SAP §2), the enrollment found in the same pass
STUDY_WEEK = """
    select count(*) from (
        select site_id, patient_id, case when day >= 1 then ceil(day / 7) else 0 end as week,
               avg(leg_pain_nrs) as leg_pain
        from (
            select site_id, patient_id, event_type, leg_pain_nrs,
                   floor((epoch_us(occurred_at) - epoch_us(max(occurred_at) filter (where event_type = 'enrollment')
                       over (partition by site_id, patient_id))) / 86400000000) as day
            from ({source})
        )
        where event_type = 'symptom_report' and day >= -14
        group by all
    )
"""


def raw_pass(paths: Paths, query: str = CALENDAR_WEEK, through_events_sql: bool = True) -> tuple[float, int]:
    """One DuckDB pass over the event log, aggregating leg pain per patient and week.

    Through `events_sql` (the committed event log, as every reader of the warehouse sees it) or,
    for reference, straight from the Parquet files.
    """
    glob = str(paths.warehouse / "events" / "site=*" / "*.parquet")
    source = events_sql(paths) if through_events_sql else f"select * from read_parquet('{glob}')"
    con = duckdb.connect()
    configure(con, paths)
    started = time.perf_counter()
    ((groups,),) = con.sql(query.format(source=source)).fetchall()
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed, int(groups)


def prepare(work: Path, events: int, sites: int = 10, seed: int = 2007) -> tuple[Paths, Study]:
    """A simulated warehouse of about `events` events under `work` (reused when it is already there)."""
    root = work / f"events-{events}-seed-{seed}-every-{DELIVERY_DAYS}d"
    paths = Paths(root / "study.toml", root / "landing", root / "warehouse")
    study = Study("BENCH", ("surgery", "conservative"), tuple(Site(f"S{i:02d}") for i in range(1, sites + 1)))
    if (paths.warehouse / "events").is_dir():
        print(f"reusing the simulated warehouse in {paths.warehouse}", flush=True)
        return paths, study
    started = time.perf_counter()
    simulated, study = simulate(events, sites, seed)
    files = write_warehouse(simulated, paths.warehouse)
    print(f"simulated {simulated.num_rows:,} events in {files} files ({time.perf_counter() - started:.1f} s)",
          flush=True)
    return paths, study


def run(work: Path, events: int, repeat: int = 1) -> str:
    """Time the raw pass and derive (medians of `repeat`, in this process, imports warm); the report."""
    from pipeline.derive import recovery  # noqa: F401  (lifelines is imported once, before timing)
    from pipeline.derive.api import derive

    paths, study = prepare(work, events)
    raw_pass(paths)  # warm the file cache
    raw = statistics.median(raw_pass(paths)[0] for _ in range(repeat))
    bare = statistics.median(raw_pass(paths, through_events_sql=False)[0] for _ in range(repeat))
    study_week = statistics.median(raw_pass(paths, STUDY_WEEK)[0] for _ in range(repeat))
    timings, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = derive(paths, study)
        timings.append(time.perf_counter() - started)
    seconds = statistics.median(timings)
    n_events = duckdb.connect().sql(f"select count(*) from ({events_sql(paths)})").fetchall()[0][0]
    lines = [
        f"derive: {n_events:,} events, memory_limit {MEMORY_LIMIT}, {os.cpu_count()} CPUs, median of {repeat}",
        f"  raw pass, calendar weeks (events_sql):   {raw:7.2f} s",
        f"  raw pass, calendar weeks (bare Parquet): {bare:7.2f} s",
        f"  raw pass, study weeks (events_sql):      {study_week:7.2f} s",
        f"  trialpipe derive:                        {seconds:7.2f} s",
        f"  ratio derive / raw, calendar weeks:      {seconds / raw:7.2f}   (target <= 3)",
        f"  ratio derive / raw, bare Parquet:        {seconds / bare:7.2f}",
        f"  ratio derive / raw, study weeks:         {seconds / study_week:7.2f}",
    ]
    if result is not None:
        lines += ["", result.describe()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the simulated warehouse here and reuse it (default: a temp dir, removed)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-derive-"))
    try:
        print(run(work, args.events, args.repeat))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
