"""`make bench`: every benchmark with its defaults (BENCH_EVENTS sets the size, e.g. 5000000)."""

from __future__ import annotations

import os
from pathlib import Path

from bench import bench_ingest

events = int(os.environ.get("BENCH_EVENTS", "500000"))
repeat = int(os.environ.get("BENCH_REPEAT", "3"))
print(bench_ingest.run(Path("bench/out/ingest"), events, repeat), flush=True)
try:
    from bench import bench_derive
except ImportError:
    bench_derive = None  # type: ignore[assignment]
if bench_derive is not None and hasattr(bench_derive, "run"):
    print(bench_derive.run(Path("bench/out/derive"), events, repeat), flush=True)

from bench import bench_verify  # noqa: E402  (after the others: it reuses bench_derive's warehouse writer)

print(bench_verify.run(Path("bench/out/verify"), events, repeat), flush=True)
