"""Fault injection for the atomicity tests: die with SIGKILL at a named point.

Set TRIALPIPE_CRASH_AT=<point>[:<n>] to kill the process the n-th time (default
first) it passes <point>. Unset in production, where this is a dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_passes: dict[str, int] = {}


def crashpoint(name: str) -> None:
    spec = os.environ.get("TRIALPIPE_CRASH_AT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
