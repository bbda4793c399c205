"""Benchmark: `trialpipe verify` (re-hash the whole log against its chain) against DuckDB reading it.

Writes the synthetic warehouse of bench_derive (weekly batches per site), adopts it into the hash
chain (one link over every file, as `trialpipe verify --adopt`), then times
  read    DuckDB reading every column of every committed Parquet file (events and ledger records)
  verify  pipeline.store.audit.verify: SHA-256 of every file, the chain's order, the head
alternately in this process, files warm in the page cache, and prints the median of the per-round
ratios (target: verify <= 2 x read).

    uv run --frozen python -m bench.bench_verify --events 4000000 --work bench/out/verify
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import duckdb

from bench.bench_derive import prepare
from pipeline.config import Paths
from pipeline.read_sql import sql_literal
from pipeline.store.audit import adopt, verify
from pipeline.store.chain import read_head
from pipeline.store.warehouse import configure


def read_all(paths: Paths) -> float:
    """Seconds for DuckDB to read every column of the log's Parquet files (a hash of each row)."""
    con = duckdb.connect()
    configure(con, paths)
    started = time.perf_counter()
    for pattern in ("events/site=*/*.parquet", "batches/*.parquet"):
        glob = sql_literal(str(paths.warehouse / pattern))
        con.execute(f"select sum(hash(x)) from read_parquet({glob}, union_by_name = true) x").fetchall()
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed


def verify_once(paths: Paths) -> float:
    started = time.perf_counter()
    result = verify(paths)
    elapsed = time.perf_counter() - started
    if not result.ok:
        raise RuntimeError(f"the benchmark log does not verify: {result.problems[:3]}")
    return elapsed


def run(work: Path, events: int, repeat: int = 3) -> str:
    paths, _ = prepare(work, events)
    if read_head(paths) is None:  # a fresh (pre-chain) warehouse; a reused one is adopted already
        adopt(paths)
    size = sum(p.stat().st_size for p in paths.warehouse.rglob("*.parquet"))
    files = sum(1 for _ in paths.warehouse.rglob("*.parquet"))
    read_all(paths)  # warm the page cache for both
    rounds = [(read_all(paths), verify_once(paths)) for _ in range(max(repeat, 1))]
    read_s = statistics.median(r for r, _ in rounds)
    verify_s = statistics.median(v for _, v in rounds)
    ratio = statistics.median(v / r for r, v in rounds)
    return "\n".join([
        f"verify: {events} events, {files} Parquet files, {size / 1e6:.0f} MB, median of {len(rounds)} rounds",
        f"  duckdb read of every column  {read_s:8.2f} s",
        f"  trialpipe verify             {verify_s:8.2f} s",
        f"  ratio verify / read (median) {ratio:8.2f}   (target <= 2)",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4_000_000)
    parser.add_argument("--work", type=Path, default=Path("bench/out/verify"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(run(args.work, args.events, args.repeat))


if __name__ == "__main__":
    main()
