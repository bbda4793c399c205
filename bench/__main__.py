"""`make bench`: every benchmark with its defaults (BENCH_EVENTS sets the size, e.g. 5000000)."""

from __future__ import annotations

import os
from pathlib import Path

from bench import bench_ingest

events = int(os.environ.get("BENCH_EVENTS", "500000"))
repeat = int(os.environ.get("BENCH_REPEAT", "3"))
patients = int(os.environ.get("BENCH_PATIENTS", "20000"))  # the multi-site delivery (~4.2 M events at 20,000)
print(bench_ingest.run(Path("bench/out/ingest"), events, repeat), flush=True)
print(bench_ingest.delivery(Path("bench/out/ingest/delivery"), patients, repeat), flush=True)
print(bench_ingest.one_percent(Path("bench/out/ingest/delivery"), repeat), flush=True)
print(bench_ingest.fixed_cost(Path("bench/out/ingest/fixed"), repeat), flush=True)
try:
    from bench import bench_derive
except ImportError:
    bench_derive = None  # type: ignore[assignment]
if bench_derive is not None and hasattr(bench_derive, "run"):
    derive_events = int(os.environ.get("BENCH_DERIVE_EVENTS", "4200000"))  # P2 and P4 are figures at ~4 M events
    print(bench_derive.run(Path("bench/out/derive"), derive_events, repeat), flush=True)

from bench import bench_verify  # noqa: E402  (after the others: it reuses bench_derive's warehouse writer)

verify_events = int(os.environ.get("BENCH_VERIFY_EVENTS", "4200000"))
print(bench_verify.run(Path("bench/out/verify"), verify_events, repeat), flush=True)
