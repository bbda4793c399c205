"""`trialpipe ingest` versus raw DuckDB `COPY (SELECT * FROM read_csv(...)) TO ... (FORMAT parquet)`.

Both read the same simulated CSV file(s) in fresh processes; each side is run
`repeat` times and the medians are compared.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import duckdb

from bench.common import Measurement, measure, median_of, python, report
from pipeline.simulate import SimulationOptions
from pipeline.simulate.large import write_large_csv

BYTES_PER_EVENT = 150  # a simulated event is about this long as CSV
STUDY = 'study_id = "BENCH"\narms = ["surgery", "conservative"]\n[[sites]]\nid = "NL01"\n'

RAW = ("import duckdb, sys; duckdb.connect().execute("
       "f\"COPY (SELECT * FROM read_csv('{sys.argv[1]}')) TO '{sys.argv[2]}' (FORMAT parquet)\")")
INGEST = ("import sys; from pathlib import Path; from pipeline.config import Paths, load_study; "
          "from pipeline.ingest.run import ingest; p = Paths(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])); "
          "s = ingest(p, load_study(p.study)); assert s.total('received') > 0")


def prepare(work: Path, target_bytes: int) -> tuple[Path, int]:
    landing = work / "landing"
    csv = write_large_csv(landing / "NL01" / "events.csv", SimulationOptions(seed=7), target_bytes=target_bytes)
    (work / "study.toml").write_text(STUDY)
    return csv.path, csv.n_rows


def run(work: Path, events: int, repeat: int) -> str:
    work.mkdir(parents=True, exist_ok=True)
    csv, n_rows = prepare(work, events * BYTES_PER_EVENT)

    def raw() -> Measurement:
        return measure(python(RAW, str(csv), str(work / "raw.parquet")))

    def trialpipe() -> Measurement:
        shutil.rmtree(work / "warehouse", ignore_errors=True)
        return measure(python(INGEST, str(work / "study.toml"), str(work / "landing"), str(work / "warehouse")))

    rows = [("raw DuckDB read_csv → parquet", median_of(repeat, raw)),
            ("trialpipe ingest", median_of(repeat, trialpipe))]
    size_mb = csv.stat().st_size / 1e6
    return report(f"ingest: {n_rows:,} events, one {size_mb:,.0f} MB CSV, median of {repeat}", rows,
                  "raw DuckDB read_csv → parquet")


def memory(work: Path, sizes_mb: list[int]) -> str:
    """Peak RSS of one ingest per file size: streaming keeps it flat as the file grows."""
    lines = ["ingest peak RSS by file size (one file, one run each)",
             f"{'file MB':>10} {'events':>12} {'peak RSS MB':>12}"]
    for mb in sizes_mb:
        w = work / f"mem{mb}"
        shutil.rmtree(w, ignore_errors=True)
        csv, n_rows = prepare(w, mb * 1_000_000)
        m = measure(python(INGEST, str(w / "study.toml"), str(w / "landing"), str(w / "warehouse")))
        lines.append(f"{csv.stat().st_size / 1e6:10.0f} {n_rows:12,} {m.peak_rss_mb:12.0f}")
    return "\n".join(lines)


# raw DuckDB reading every delivered file of a landing zone into Parquet (read_csv / read_json / read_parquet)
RAW_DELIVERY = (
    "import duckdb, sys, pathlib; con = duckdb.connect(); out = pathlib.Path(sys.argv[2]); out.mkdir(exist_ok=True)\n"
    "for i, f in enumerate(sorted(pathlib.Path(sys.argv[1]).rglob('*.*'))):\n"
    "    n = f.name\n"
    "    src = (f\"read_csv('{f}', all_varchar=true)\" if '.csv' in n else f\"read_json('{f}')\" if '.jsonl' in n\n"
    "           else f\"read_parquet('{f}')\")\n"
    "    con.execute(f\"COPY (SELECT * FROM {src}) TO '{out}/{i}.parquet' (FORMAT parquet)\")")
IMPORTS = "import great_expectations, duckdb"


def delivery(work: Path, patients: int, repeat: int) -> str:
    """A multi-site, mixed-format delivery (CSV, JSONL, Parquet, gz) from the simulator, clean."""
    from pipeline.simulate import simulate_study

    work.mkdir(parents=True, exist_ok=True)
    landing, study = work / "landing", work / "study.toml"
    if not study.exists():
        shutil.rmtree(landing, ignore_errors=True)
        simulate_study(landing, study, SimulationOptions(seed=7, n_patients=patients, faults=False))
    files = sorted(p for p in landing.rglob("*.*"))
    size_mb = sum(p.stat().st_size for p in files) / 1e6

    def raw() -> Measurement:
        shutil.rmtree(work / "raw", ignore_errors=True)
        return measure(python(RAW_DELIVERY, str(landing), str(work / "raw")))

    def trialpipe() -> Measurement:
        shutil.rmtree(work / "warehouse", ignore_errors=True)
        return measure(python(INGEST, str(study), str(landing), str(work / "warehouse")))

    return paired(f"P1 ingest: {patients:,} patients, {len(files)} files ({size_mb:,.0f} MB, CSV/JSONL/Parquet/gz), "
                  f"{repeat} pairs", repeat, ("raw DuckDB read → parquet", raw), ("trialpipe ingest", trialpipe),
                  target=5.0)


def fixed_cost(work: Path, repeat: int) -> str:
    """Whole CLI processes: one 10-row file into an empty warehouse, against importing GX and DuckDB."""
    from pipeline.simulate.writers import write_events

    work.mkdir(parents=True, exist_ok=True)
    (work / "study.toml").write_text(STUDY)
    rows = [{"event_id": f"E{i}", "event_type": "enrollment", "site_id": "NL01", "patient_id": f"P{i}",
             "occurred_at": "2026-01-01T09:00:00Z", "recorded_at": "2026-01-01T10:00:00Z", "arm": "surgery",
             "age_years": 40, "sex": "F", "affected_side": "left"} for i in range(10)]

    def imports() -> Measurement:
        return measure(python(IMPORTS))

    def ten_rows() -> Measurement:
        shutil.rmtree(work / "warehouse", ignore_errors=True)
        shutil.rmtree(work / "landing", ignore_errors=True)
        write_events(rows, work / "landing" / "NL01" / "ten.csv")
        return measure([str(Path(sys.executable).parent / "trialpipe"), "--study", str(work / "study.toml"),
                        "--landing", str(work / "landing"), "--warehouse", str(work / "warehouse"), "ingest"])

    return paired(f"CLI fixed cost: one 10-row file into an empty warehouse, {repeat} pairs",
                  repeat, ("python -c 'import great_expectations, duckdb'", imports),
                  ("trialpipe ingest (10 rows)", ten_rows), target=1.5)


def paired(title: str, repeat: int, base: tuple[str, Callable[[], Measurement]],
           other: tuple[str, Callable[[], Measurement]], target: float) -> str:
    """Run the two sides in turn, `repeat` pairs; the medians and the median of the per-pair time ratios."""
    pairs = [(base[1](), other[1]()) for _ in range(repeat)]
    ratio = statistics.median(o.seconds / b.seconds for b, o in pairs)
    rows = [(base[0], Measurement(statistics.median(b.seconds for b, _ in pairs),
                                  statistics.median(b.peak_rss_mb for b, _ in pairs))),
            (other[0], Measurement(statistics.median(o.seconds for _, o in pairs),
                                   statistics.median(o.peak_rss_mb for _, o in pairs)))]
    return (report(title, rows, base[0]) +
            f"\nmedian of the per-pair time ratios {ratio:.2f} (target <= {target})")


#: a 1 % delivery into the log of the multi-site delivery: this many enrolled patients, each this many diaries
DELIVERY_PATIENTS, DELIVERY_DIARIES = 200, 7
DIARY_COLUMNS = ("event_id", "event_type", "site_id", "patient_id", "occurred_at", "recorded_at", "leg_pain_nrs",
                 "back_pain_nrs", "pain_extent", "paresthesia", "global_recovery")


def write_week(log: Path, landing: Path) -> int:
    """A week of diaries for DELIVERY_PATIENTS patients of the log, one CSV per site, after their last event."""
    shutil.rmtree(landing, ignore_errors=True)
    glob = str(log / "events" / "site=*" / "*.parquet")
    picked = duckdb.connect().execute(f"""
        SELECT site_id, patient_id, max(occurred_at) FROM read_parquet('{glob}') GROUP BY site_id, patient_id
        ORDER BY hash(patient_id), patient_id LIMIT {DELIVERY_PATIENTS}""").fetchall()
    by_site: dict[str, list[dict[str, str]]] = {}
    for site, patient, last in picked:
        for d in range(1, DELIVERY_DIARIES + 1):
            at = last + timedelta(days=d)
            rows = by_site.setdefault(site, [])
            rows.append({"event_id": f"W{len(rows):05d}-{site}-{patient}", "event_type": "symptom_report",
                         "site_id": site, "patient_id": patient, "occurred_at": at.isoformat(),
                         "recorded_at": (at + timedelta(hours=2)).isoformat(), "leg_pain_nrs": str(d % 5),
                         "back_pain_nrs": "2", "pain_extent": "back", "paresthesia": "none", "global_recovery": "3"})
    for site, rows in by_site.items():
        (landing / site).mkdir(parents=True)
        with open(landing / site / "week.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, DIARY_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return sum(len(r) for r in by_site.values())


def synthetic_log(work: Path, events: int) -> None:
    """`work/log` and `work/study.toml`: bench_derive's simulated warehouse of `events` events (seconds, not an
    ingest of a whole delivery), for the 1 % delivery into a log of ~4 M events."""
    from bench.bench_derive import prepare as simulated_warehouse
    from bench.bench_derive import write_study

    paths, study = simulated_warehouse(work / "synthetic", events)
    write_study(paths, study)
    shutil.copyfile(paths.study, work / "study.toml")
    if not (work / "log" / "batches").is_dir():
        shutil.rmtree(work / "log", ignore_errors=True)
        shutil.copytree(paths.warehouse, work / "log", ignore=shutil.ignore_patterns("*.duckdb", ".duckdb_tmp"))


def one_percent(work: Path, repeat: int) -> str:
    """Whole CLI processes: a 1 % delivery into the log of `delivery()` (built once under `work/log`)."""
    study, log = work / "study.toml", work / "log"
    if not (log / "batches").is_dir():
        shutil.rmtree(log, ignore_errors=True)
        if (work / "warehouse" / "batches").is_dir():  # what delivery() ingested last
            shutil.copytree(work / "warehouse", log)
        else:
            measure(python(INGEST, str(study), str(work / "landing"), str(log)))
    events = duckdb.connect().execute(
        f"SELECT count(*) FROM read_parquet('{log / 'events' / 'site=*' / '*.parquet'}')").fetchall()[0][0]
    landing = work / "landing-1pct"
    n = write_week(log, landing)

    def imports() -> Measurement:
        return measure(python(IMPORTS))

    def week() -> Measurement:
        shutil.rmtree(work / "wh-1pct", ignore_errors=True)
        shutil.copytree(log, work / "wh-1pct")
        return measure([str(Path(sys.executable).parent / "trialpipe"), "--study", str(study), "--landing",
                        str(landing), "--warehouse", str(work / "wh-1pct"), "ingest"])

    return paired(f"CLI 1 % delivery: {n:,} diaries of {DELIVERY_PATIENTS} patients into a log of {events:,} "
                  f"events, {repeat} pairs", repeat, ("python -c 'import great_expectations, duckdb'", imports),
                  ("trialpipe ingest (1 % delivery)", week), target=2.0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("bench/out/ingest"))
    ap.add_argument("--patients", type=int, default=0, help="also the multi-site delivery of this many patients")
    ap.add_argument("--log-events", type=int, default=0,
                    help="only the 1 %% delivery, into a simulated log of this many events (bench_derive's)")
    ap.add_argument("--memory-mb", type=int, nargs="*", default=[],
                    help="also measure peak RSS for single CSV files of these sizes (e.g. 50 200 2000)")
    args = ap.parse_args(argv)
    if args.log_events:
        # in a child: this process stays small (a child's peak RSS counts its parent's at the fork)
        subprocess.run(python("import sys; from pathlib import Path; from bench.bench_ingest import synthetic_log; "
                              "synthetic_log(Path(sys.argv[1]), int(sys.argv[2]))",
                              str(args.work / "synthetic-log"), str(args.log_events)), check=True)
        print(one_percent(args.work / "synthetic-log", args.repeat))
        return
    print(run(args.work, args.events, args.repeat))
    if args.patients:
        print(delivery(args.work / "delivery", args.patients, args.repeat))
        print(one_percent(args.work / "delivery", args.repeat))
    print(fixed_cost(args.work / "fixed", args.repeat))
    if args.memory_mb:
        print(memory(args.work, args.memory_mb))


if __name__ == "__main__":
    main()
