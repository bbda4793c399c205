"""What templates are given: figures with captions, tables of formatted numbers, and the Jinja setup.

Autoescape is on for every template and nothing built from site data is ever
wrapped in `Markup`; the only markup passed in is the SVG that `svg.figure_svg`
produced from numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup


@dataclass(frozen=True)
class DataTable:
    """A small table of already formatted cells (the numbers behind a figure, a listing)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    key: str = ""
    classes: tuple[str, ...] = ()  # one CSS class per row ("" for none), e.g. to mark unvalidated alerts

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, key: str = "", formats: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> DataTable:
        formats = formats or {}
        headers = headers or {}
        rows = tuple(
            tuple(formats.get(c, fmt)(v) for c, v in zip(frame.columns, rec, strict=True))
            for rec in frame.itertuples(index=False, name=None)
        )
        return cls(tuple(headers.get(str(c), str(c)) for c in frame.columns), rows, key)

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class FigureBlock:
    """One figure: inline SVG (None when there is nothing to draw), caption, provenance, its numbers."""

    key: str
    title: str
    caption: str
    provenance: str
    svg: Markup | None
    numbers: DataTable
    empty_note: str = "No data yet."

    @property
    def element_id(self) -> str:
        return f"fig-{self.key}"


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    intro: str = ""
    figures: tuple[FigureBlock, ...] = ()
    tables: tuple[tuple[str, DataTable], ...] = ()
    more: tuple[tuple[str, DataTable], ...] = ()  # shown folded (<details>) on screen, unfolded in print
    notes: tuple[str, ...] = field(default_factory=tuple)
    links: tuple[tuple[str, str], ...] = ()  # (element id on the same page, link text): cross-references


def is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def fmt(value: Any, digits: int = 2) -> str:
    """A cell as text: '–' for missing, integers without decimals, floats rounded."""
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v, digits) for v in value)
    if is_missing(value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (pd.Timestamp, datetime)):
        ts = pd.Timestamp(value)
        return (ts.tz_convert("UTC") if ts.tzinfo else ts).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, (float, np.floating, Decimal)):
        v = float(value)
        return f"{v:.{digits}f}" if math.isfinite(v) else str(v)
    return str(value)


def iso_utc(value: datetime) -> str:
    """An instant in ISO 8601, UTC, to the second ('2026-11-21T17:56:44Z'); fractions of a second only when the
    instant has them (a cutoff given as 17:56:44.5 is not shown as 17:56:44)."""
    ts = pd.Timestamp(value)
    ts = ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond or ts.nanosecond:
        text += f".{ts.microsecond:06d}{ts.nanosecond:03d}".rstrip("0")
    return text + "Z"


def fmt0(value: Any) -> str:
    return fmt(value, 0)


def fmt1(value: Any) -> str:
    return fmt(value, 1)


def fmt3(value: Any) -> str:
    return fmt(value, 3)


def pct(value: Any) -> str:
    return "–" if is_missing(value) else f"{100 * float(value):.1f}%"


def pvalue(value: Any) -> str:
    if is_missing(value):
        return "–"
    v = float(value)
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def interval(point: Any, low: Any, high: Any, digits: int = 2, scale: float = 1.0) -> str:
    if is_missing(point):
        return "–"
    return f"{float(point) * scale:.{digits}f} [{float(low) * scale:.{digits}f}, {float(high) * scale:.{digits}f}]" \
        if not (is_missing(low) or is_missing(high)) else f"{float(point) * scale:.{digits}f}"


def listing(columns: Sequence[str], rows: Iterable[Sequence[Any]], key: str = "",
            classes: Sequence[str] = ()) -> DataTable:
    return DataTable(tuple(columns), tuple(tuple(fmt(v) for v in r) for r in rows), key, tuple(classes))


def environment() -> Environment:
    """Jinja environment over pipeline/report/templates, autoescape on, undefined names are errors."""
    env = Environment(
        loader=PackageLoader("pipeline.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    return env


def render_template(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)
