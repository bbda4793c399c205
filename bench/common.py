"""Run a command in a fresh process; measure wall time and peak RSS (from wait4)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Measurement:
    seconds: float
    peak_rss_mb: float


def measure(args: list[str], env: dict[str, str] | None = None) -> Measurement:
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args[:4])}… failed: {err[-2000:]}")
    return Measurement(seconds, usage.ru_maxrss / 1024)


def python(code: str, *argv: str) -> list[str]:
    return [sys.executable, "-c", code, *argv]


def median_of(repeat: int, run: Callable[[], Measurement]) -> Measurement:
    runs = [run() for _ in range(repeat)]
    return Measurement(statistics.median(r.seconds for r in runs), statistics.median(r.peak_rss_mb for r in runs))


def report(title: str, rows: list[tuple[str, Measurement]], baseline: str) -> str:
    base = dict(rows)[baseline]
    lines = [title, f"{'':34} {'median s':>10} {'peak RSS MB':>12} {'time ratio':>11} {'RSS ratio':>10}"]
    for name, m in rows:
        lines.append(f"{name:34} {m.seconds:10.2f} {m.peak_rss_mb:12.0f} {m.seconds / base.seconds:11.2f} "
                     f"{m.peak_rss_mb / base.peak_rss_mb:10.2f}")
    return "\n".join(lines)
