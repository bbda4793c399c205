"""Matplotlib figures as inline SVG: no pyplot state, no external references, unique ids per figure.

Text stays text (`svg.fonttype = none`), drawn in the reader's own sans-serif
font; nothing is fetched. Text is never parsed as matplotlib math (`$…$`): site
ids are folder names and any text from the data is drawn literally (`label`
also replaces control characters and shortens very long text). The XML prolog, DOCTYPE, RDF metadata and namespace
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
    "text.parse_math": False,  # '$' in a site id or other data text is a dollar sign, never math
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


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
LABEL_LIMIT = 40


def label(value: Any, limit: int = LABEL_LIMIT) -> str:
    """Data text (site id, stratum, modality, arm) as a figure label: control characters replaced, long text
    shortened. Tables under the figures show the text in full."""
    text = _CONTROL.sub("\ufffd", "" if value is None else str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
)
_XMLNS = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(xlink:href="#|href="#|url\(#)([^")]+)')
_TAG = re.compile(r"<[^>]*>")  # text drawn from data has '<' and '>' escaped, so it is never inside a tag


def clean_svg(text: str, key: str) -> str:
    """Inline-ready SVG: no prolog/metadata/namespaces, ids prefixed with `key`.

    Namespaces, ids and references are rewritten inside tags only: text content (a site id that reads
    `id="x"`) is left as drawn.
    """
    for pattern in _STRIP:
        text = pattern.sub("", text)
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", key)

    def tag(m: re.Match[str]) -> str:
        t = _XMLNS.sub("", m.group(0))
        t = _ID.sub(lambda n: f'id="{prefix}-{n.group(1)}"', t)
        return _REF.sub(lambda n: f"{n.group(1)}{prefix}-{n.group(2)}", t)

    text = _TAG.sub(tag, text)
    return text.replace("<svg ", f'<svg role="img" aria-labelledby="{prefix}-title" ', 1).strip()


def figure_svg(fig: Any, key: str) -> Markup:
    """Render a Figure to inline SVG markup (the only markup the templates receive).

    Every text of the figure is drawn literally: text created outside `RC` (ax.text, tick labels, legends)
    would otherwise follow the global `text.parse_math` and fail on, or typeset, a `$…$` in data text.
    """
    import matplotlib
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        text.set_parse_math(False)
    buf = io.StringIO()
    with matplotlib.rc_context({**RC, "svg.hashsalt": f"trialpipe-{key}"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return Markup(clean_svg(buf.getvalue(), key))
