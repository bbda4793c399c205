"""Benchmark: `derive` on a ~4 M-event log, in full and after a 1 % delivery.

Writes a synthetic warehouse (event log + ledger in EVENT_SCHEMA, one file per site and half
year, as ingest stores them; reused from --work when there), then measures
  P2  a full derive (pipeline.derive.api.derive, in this process with imports warm) against the
      one-pass DuckDB aggregate over the same Parquet files: mean leg pain per patient and
      `epoch(occurred_at) // 604800` week (target <= 5x, goal 3x);
  P4  `trialpipe derive` after a delivery of 200 patients x 7 diaries into that log against a full
      `trialpipe derive`, both whole CLI processes (target <= 0.2x), and their peak RSS (<= 1 GB).
Ratios are medians of the ratios of each repetition.

    uv run --frozen python -m bench.bench_derive --events 4200000 --work bench/out/derive
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.common import Measurement, measure
from pipeline.config import Paths, Site, Study
from pipeline.schema import EVENT_SCHEMA, EXTENT_LEVELS
from pipeline.store.audit import adopt
from pipeline.store.chain import read_head
from pipeline.store.commit import Batch, commit
from pipeline.store.warehouse import BATCH_SCHEMA, MEMORY_LIMIT, configure, events_sql, writer_lock

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


def prepare(work: Path, events: int, sites: int = 10, seed: int = 2007) -> tuple[Paths, Study]:
    """A simulated warehouse of about `events` events under `work` (reused when it is already there).

    Written as before the audit chain; adopted into it (as `trialpipe verify --adopt`) by `chained`.
    """
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


#: the one-pass DuckDB aggregate P2 is measured against: mean leg pain per patient and (epoch) week,
#: straight from the same Parquet files
ONE_PASS = """
    select count(*) from (
        select site_id, patient_id, epoch(occurred_at) // 604800 as week, avg(leg_pain_nrs) as leg_pain
        from read_parquet({files})
        where event_type = 'symptom_report'
        group by all
    )
"""
#: a 1 % delivery: this many patients, each with this many new diaries (P4)
DELIVERY_PATIENTS, DELIVERY_DIARIES = 200, 7
DELIVERY_PREFIX = "delivery-"


def one_pass(paths: Paths) -> float:
    files = "'" + str(paths.warehouse / "events" / "site=*" / "*.parquet") + "'"
    con = duckdb.connect()
    configure(con, paths)
    started = time.perf_counter()
    con.sql(ONE_PASS.format(files=files)).fetchall()
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed


def chained(paths: Paths) -> None:
    """Adopt a freshly simulated warehouse into the hash chain once: `trialpipe derive` refuses a log
    that does not verify."""
    if read_head(paths) is None:
        adopt(paths)


def working_copy(paths: Paths) -> Paths:
    """A copy of the simulated (chained) warehouse to derive and deliver into; the original stays as
    simulated, so a rerun starts from the same log (a delivery is committed, so it cannot be removed)."""
    root = paths.warehouse.parent / "run"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(paths.warehouse, root / "warehouse",
                    ignore=shutil.ignore_patterns("*.duckdb", "*.duckdb.wal", ".duckdb_tmp"))
    return Paths(root / "study.toml", root / "landing", root / "warehouse")


def write_study(paths: Paths, study: Study) -> None:
    lines = [f'study_id = "{study.study_id}"', "arms = [" + ", ".join(f'"{a}"' for a in study.arms) + "]"]
    lines += [f'[[sites]]\nid = "{s}"' for s in study.site_ids]
    paths.study.write_text("\n".join(lines) + "\n")


def write_delivery(paths: Paths, seed: int = 11) -> int:
    """A week's delivery of DELIVERY_DIARIES diaries for DELIVERY_PATIENTS patients, one file per site,
    committed as ingest commits it (EVENT_SCHEMA, one ingestion instant per file, a chained ledger
    record last: pipeline.store.commit)."""
    rng = np.random.default_rng(seed)
    con = duckdb.connect()
    glob = str(paths.warehouse / "events" / "site=*" / "*.parquet")
    ((last_ingested,),) = con.sql(f"select max(ingested_at) from read_parquet('{glob}')").fetchall()
    picked = con.sql(f"""
        select site_id, patient_id, max(occurred_at) as last_at from read_parquet('{glob}')
        group by site_id, patient_id order by hash(patient_id), patient_id limit {DELIVERY_PATIENTS}
    """).fetchall()
    rows = []
    for site_id, patient_id, last_at in picked:
        for d in range(DELIVERY_DIARIES):
            pain = int(rng.integers(0, 5))
            rows.append({
                "event_id": f"N{len(rows):08d}", "event_type": "symptom_report", "site_id": site_id,
                "patient_id": patient_id, "occurred_at": last_at + timedelta(days=d + 1),
                "recorded_at": last_at + timedelta(days=d + 1, hours=2), "leg_pain_nrs": pain,
                "back_pain_nrs": pain, "pain_extent": "back", "paresthesia": "none", "global_recovery": 2,
                "walking_tolerance_min": 60, "schema_version": 1, "warnings": [],
            })
    events = pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)
    ingested = max(last_ingested, max(r["recorded_at"] for r in rows)) + timedelta(days=1)
    for site_id in sorted({r["site_id"] for r in rows}):
        part = events.filter(pc.equal(events["site_id"], site_id))
        batch_id = f"{DELIVERY_PREFIX}{site_id}"
        part = part.set_column(EVENT_SCHEMA.get_field_index("batch_id"), "batch_id",
                               pa.array([batch_id] * part.num_rows, pa.string()))
        part = part.set_column(EVENT_SCHEMA.get_field_index("ingested_at"), "ingested_at",
                               pa.array([ingested] * part.num_rows, pa.timestamp("us", tz="UTC")))
        staged = paths.warehouse / "events" / f"site={site_id}" / f".{batch_id}.parquet.tmp"
        pq.write_table(part, staged)
        record = {"batch_id": batch_id, "site_id": site_id, "source_file": f"{batch_id}.csv",
                  "source_sha256": batch_id, "status": "ingested", "file_rules": [], "received": part.num_rows,
                  "accepted": part.num_rows, "rejected": 0, "duplicates": 0, "warnings": 0,
                  "unknown_columns": [], "ingested_at": ingested}
        with writer_lock(paths):
            commit(paths, Batch(batch_id, site_id, record, events_file=staged))
    return len(rows)


def cli_derive(paths: Paths) -> Measurement:
    return measure([sys.executable, "-m", "pipeline.cli", "derive", "--study", str(paths.study),
                    "--landing", str(paths.landing), "--warehouse", str(paths.warehouse)])


def run(work: Path, events: int, repeat: int = 1) -> str:
    """P2 (full derive vs the one-pass aggregate) and P4 (derive after a 1 % delivery vs a full derive)."""
    from pipeline.derive import incidence, recovery  # noqa: F401  (imported once, before timing)
    from pipeline.derive.api import derive

    simulated, study = prepare(work, events)
    chained(simulated)
    paths = working_copy(simulated)
    write_study(paths, study)
    db, base = paths.db_path, paths.warehouse.parent / "trial-before-delivery.duckdb"
    one_pass(paths)  # warm the file cache
    # the whole processes first: a child's peak RSS counts the parent's at the fork, so they are
    # measured while this process is still small (before the in-process derivations of P2)
    db.unlink(missing_ok=True)
    cli_derive(paths)
    shutil.copyfile(db, base)  # derived before the delivery
    diaries = write_delivery(paths)
    p4, full_cli, incr_cli = [], [], []
    for _ in range(repeat):
        db.unlink()
        full_cli.append(cli_derive(paths))
        shutil.copyfile(base, db)
        incr_cli.append(cli_derive(paths))
        p4.append(incr_cli[-1].seconds / full_cli[-1].seconds)
    p2, full_s = [], []
    for _ in range(repeat):
        db.unlink(missing_ok=True)
        started = time.perf_counter()
        result = derive(paths, study)
        full_s.append(time.perf_counter() - started)
        raw = one_pass(paths)
        p2.append(full_s[-1] / raw)
    n_events = duckdb.connect().sql(f"select count(*) from ({events_sql(paths)})").fetchall()[0][0]
    med = statistics.median
    return "\n".join([
        f"derive: {n_events:,} events in {len(list(paths.warehouse.glob('events/site=*/*.parquet')))} files, "
        f"memory_limit {MEMORY_LIMIT}, {os.cpu_count()} CPUs, medians of {repeat}",
        f"  P2 full derive (in process, imports warm)       {med(full_s):7.2f} s",
        "  P2 one-pass DuckDB aggregate (mean leg pain per patient and epoch(occurred_at) // 604800)",
        f"                                                  {med(full_s) / med(p2):7.2f} s",
        f"  P2 ratio full derive / one-pass aggregate       {med(p2):7.2f}   (target <= 5, goal 3)",
        f"  P4 `trialpipe derive`, full (whole process)     {med(m.seconds for m in full_cli):7.2f} s, "
        f"peak RSS {med(m.peak_rss_mb for m in full_cli):5.0f} MB (target <= 1024)",
        f"  P4 `trialpipe derive` after a delivery of {DELIVERY_PATIENTS} patients x {DELIVERY_DIARIES} diaries "
        f"({diaries} events)",
        f"                                                  {med(m.seconds for m in incr_cli):7.2f} s, "
        f"peak RSS {med(m.peak_rss_mb for m in incr_cli):5.0f} MB",
        f"  P4 ratio after delivery / full                  {med(p4):7.2f}   (target <= 0.2)",
        "",
        result.describe(),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=4_200_000)
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
