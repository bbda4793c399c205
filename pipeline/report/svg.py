"""Matplotlib figures as inline SVG: no pyplot state, no external references, unique ids per figure.

Text stays text (`svg.fonttype = none`), drawn in the reader's own sans-serif
font; nothing is fetched. The XML prolog, DOCTYPE, RDF metadata and namespace
declarations are removed (HTML parses inline SVG without them), and every id
is prefixed with the figure key so several figures can share one page.
"""

from __future__ import annotations

import io
import re
from typing import Any

from markupsafe import Markup

RC: Any = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica", "Liberation Sans"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "legend.frameon": False,
    "legend.fontsize": 8,
}

#: Colour-blind-safe palette (Okabe–Ito), arms and strata take colours in order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
GREY = "#9a9a9a"


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Any, Any]:
    """A standalone matplotlib Figure (no pyplot) and its axes."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


_STRIP = (
    re.compile(r"<\?xml[^>]*\?>\s*"),
    re.compile(r"<!DOCTYPE[^>]*>\s*", re.S),
    re.compile(r"<metadata>.*?</metadata>\s*", re.S),
    re.compile(r'\s+xmlns(:\w+)?="[^"]*"'),
)
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(xlink:href="#|href="#|url\(#)([^")]+)')


def clean_svg(text: str, key: str) -> str:
    """Inline-ready SVG: no prolog/metadata/namespaces, ids prefixed with `key`."""
    for pattern in _STRIP:
        text = pattern.sub("", text)
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", key)
    text = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = _REF.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)
    return text.replace("<svg ", f'<svg role="img" aria-labelledby="{prefix}-title" ', 1).strip()


def figure_svg(fig: Any, key: str) -> Markup:
    """Render a Figure to inline SVG markup (the only markup the templates receive)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({**RC, "svg.hashsalt": f"trialpipe-{key}"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return Markup(clean_svg(buf.getvalue(), key))
