"""`trialpipe ingest` versus raw DuckDB `COPY (SELECT * FROM read_csv(...)) TO ... (FORMAT parquet)`.

Both read the same simulated CSV file(s) in fresh processes; each side is run
`repeat` times and the medians are compared.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("bench/out/ingest"))
    ap.add_argument("--memory-mb", type=int, nargs="*", default=[],
                    help="also measure peak RSS for single CSV files of these sizes (e.g. 50 200 2000)")
    args = ap.parse_args(argv)
    print(run(args.work, args.events, args.repeat))
    if args.memory_mb:
        print(memory(args.work, args.memory_mb))


if __name__ == "__main__":
    main()
