"""The DTS §5 rule catalogue, kept as data in expectations/rules.csv."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

Severity = Literal["file_rejected", "row_rejected", "warning", "no_op"]
EXPECTATIONS_DIR = Path(__file__).resolve().parent.parent / "expectations"


@dataclass(frozen=True)
class Rule:
    name: str
    severity: Severity
    dts_section: str
    message: str


@cache
def catalogue() -> dict[str, Rule]:
    with open(EXPECTATIONS_DIR / "rules.csv", newline="", encoding="utf-8") as fh:
        return {
            r["rule"]: Rule(r["rule"], r["severity"], r["dts_section"], r["message"])  # type: ignore[arg-type]
            for r in csv.DictReader(fh)
        }


def rule(name: str) -> Rule:
    return catalogue()[name]


def names(severity: Severity) -> tuple[str, ...]:
    return tuple(r.name for r in catalogue().values() if r.severity == severity)


def is_rejecting(name: str) -> bool:
    return catalogue()[name].severity in ("row_rejected", "file_rejected")
