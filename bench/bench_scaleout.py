"""Scale-out: ingest throughput of a multi-site delivery with 1 worker against 2 workers.

The workers do what `ingest_sites` does on Celery: every site is staged in its own fresh process
(`stage_one_site`, as a task process of a Celery worker), at most one per worker at a time, each
worker pinned to its own core with its DuckDB on one thread (TRIALPIPE_DUCKDB_THREADS=1); once every
site is staged, one process commits them all, one after the other in site order (`commit_sites`,
the task of the 1-slot writer pool). What limits the ratio is the serial commit share (decide +
write) and a site larger than the others (the last staging ends when it does). Raw DuckDB on the same
CSV files, on one core and on two, is the reference: what a second core gives a plain scan on this
machine, now.

    python -m bench.bench_scaleout --events 1000000 --sites 4 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.simulate import SimulationOptions
from pipeline.simulate.large import write_large_csv

BYTES_PER_EVENT = 177  # a simulated event of one site (large.py) is about this long as CSV

STAGE = ("import sys; from pathlib import Path; from pipeline.config import Paths, load_study; "
         "from pipeline.ingest.run import stage_one_site; p = Paths(*map(Path, sys.argv[1:4])); "
         "stage_one_site(p, load_study(p.study), sys.argv[4], sys.argv[5])")
COMMIT = ("import sys; from pathlib import Path; from pipeline.config import Paths, load_study; "
          "from pipeline.ingest.run import commit_sites; from pipeline.ingest.summary import IngestSummary; "
          "p = Paths(*map(Path, sys.argv[1:4])); r = commit_sites(p, load_study(p.study), sys.argv[4]); "
          "assert len(r) == int(sys.argv[5]) and all(isinstance(s, IngestSummary) for _, s in r), r")
RAW = ("import duckdb, sys; con = duckdb.connect(); con.execute(f'SET threads = {sys.argv[1]}'); "
       "con.execute(f\"COPY (SELECT * FROM read_csv({sys.argv[2:-1]!r})) TO '{sys.argv[-1]}' (FORMAT parquet)\")")


def sites_of(n: int) -> list[str]:
    return [f"NL{i:02d}" for i in range(1, n + 1)]


def prepare(work: Path, events: int, n_sites: int) -> int:
    """One simulated site's CSV, copied under every site's ids (NL01 → NL02 …): sites of equal size."""
    landing = work / "landing"
    shutil.rmtree(landing, ignore_errors=True)
    first = write_large_csv(landing / "NL01" / "events.csv", SimulationOptions(seed=7),
                            target_bytes=events // n_sites * BYTES_PER_EVENT)
    data = first.path.read_bytes()
    for site in sites_of(n_sites)[1:]:
        (landing / site).mkdir(parents=True)
        (landing / site / "events.csv").write_bytes(data.replace(b'"NL01', f'"{site}'.encode()))
    study = ['study_id = "BENCH"', 'arms = ["surgery", "conservative"]']
    study += [f'[[sites]]\nid = "{s}"' for s in sites_of(n_sites)]
    (work / "study.toml").write_text("\n".join(study) + "\n")
    return first.n_rows * n_sites


def pinned(core: int) -> Callable[[], None]:
    return lambda: os.sched_setaffinity(0, {core})


def run_python(code: str, args: list[str], core: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TRIALPIPE_DUCKDB_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=pinned(core))


def wait_ok(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(err.decode(errors="replace")[-3000:])


def ingest_with(work: Path, n_sites: int, workers: int, cores: list[int]) -> tuple[float, float]:
    """(seconds staging, seconds committing) of one run into a fresh warehouse with `workers` workers."""
    warehouse = work / "warehouse"
    shutil.rmtree(warehouse, ignore_errors=True)
    base = [str(work / "study.toml"), str(work / "landing"), str(warehouse)]
    run_id = f"bench-{workers}w-{time.time_ns()}"
    t0 = time.perf_counter()
    queue = sites_of(n_sites)
    running: dict[int, subprocess.Popen[bytes]] = {}  # worker -> its staging task
    while queue or running:
        for w in range(workers):
            if w not in running and queue:
                running[w] = run_python(STAGE, [*base, run_id, queue.pop(0)], cores[w % len(cores)])
        for w, proc in list(running.items()):
            if proc.poll() is not None:
                wait_ok(proc)
                del running[w]
        time.sleep(0.05)
    t1 = time.perf_counter()
    wait_ok(run_python(COMMIT, [*base, run_id, str(n_sites)], cores[0]))  # the writer: every site, in site order
    return t1 - t0, time.perf_counter() - t1


def raw_seconds(work: Path, threads: int, n_sites: int) -> float:
    files = [str(work / "landing" / s / "events.csv") for s in sites_of(n_sites)]
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", RAW, str(threads), *files, str(work / "raw.parquet")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:threads])))
    wait_ok(proc)
    return time.perf_counter() - t0


def run(work: Path, events: int, n_sites: int, repeat: int) -> str:
    work.mkdir(parents=True, exist_ok=True)
    n_events = prepare(work, events, n_sites)
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return "scale-out: needs two cores (sched_getaffinity shows one)"
    rows: list[tuple[float, float, float, float, float, float]] = []
    for _ in range(repeat):  # 1 and 2 workers (and raw DuckDB) alternate, so drifting load hits both alike
        s1, c1 = ingest_with(work, n_sites, 1, cores[:1])
        s2, c2 = ingest_with(work, n_sites, 2, cores[:2])
        rows.append((s1, c1, s2, c2, raw_seconds(work, 1, n_sites), raw_seconds(work, 2, n_sites)))
    med = [statistics.median(r[i] for r in rows) for i in range(6)]
    ratio = statistics.median((s1 + c1) / (s2 + c2) for s1, c1, s2, c2, _, _ in rows)
    raw_ratio = statistics.median(r1 / r2 for *_, r1, r2 in rows)
    commit_share = statistics.median(c1 / (s1 + c1) for s1, c1, *_ in rows)
    ceiling = 1 / ((1 - commit_share) / 2 + commit_share)
    lines = [
        f"scale-out: {n_events:,} events, {n_sites} sites of equal size (CSV), median of {repeat}",
        f"{'':32} {'stage s':>9} {'commit s':>9} {'total s':>9} {'events/s':>10}",
        f"{'1 worker (1 core)':32} {med[0]:9.1f} {med[1]:9.1f} {med[0] + med[1]:9.1f} "
        f"{n_events / (med[0] + med[1]):10,.0f}",
        f"{'2 workers (1 core each)':32} {med[2]:9.1f} {med[3]:9.1f} {med[2] + med[3]:9.1f} "
        f"{n_events / (med[2] + med[3]):10,.0f}",
        f"throughput ratio 2 workers / 1 worker: {ratio:.2f}  (median of the per-run ratios; target ≥ 1.6)",
        f"serial commit share with 1 worker: {commit_share:.0%}, which caps the ratio at {ceiling:.2f} (Amdahl)",
        f"raw DuckDB read_csv → parquet on the same files: 1 thread {med[4]:.1f} s, 2 threads {med[5]:.1f} s, "
        f"ratio {raw_ratio:.2f} (what a second core gives here now)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--sites", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("bench/out/scaleout"))
    args = ap.parse_args(argv)
    print(run(args.work, args.events, args.sites, args.repeat))


if __name__ == "__main__":
    main()
