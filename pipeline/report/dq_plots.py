"""The dashboard's heatmaps: sites (rows) × ingestion weeks (columns), each cell labelled with its value."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from markupsafe import Markup

from pipeline.report.svg import figure_svg, new_figure
from pipeline.report.svg import label as data_label

MARK = "#b3261e"  # outline of a cell with files rejected whole


def files_note(n: int) -> str:
    """What a heatmap cell adds for files rejected whole that site-week."""
    return f"+{n} file{'s' if n != 1 else ''}"


def heatmap(matrix: pd.DataFrame, key: str, cmap: str, label: str, cell_text: Callable[[float], str],
            vmin: float = 0.0, vmax: float | None = None, vmax_floor: float = 0.0,
            marks: pd.DataFrame | None = None) -> Markup | None:
    """A labelled heatmap; missing cells (no value that week, e.g. no rows received) are grey with '–'.

    The colour scale runs from `vmin` to `vmax`, or to the largest value but at least `vmax_floor`, so a
    1% rejection rate does not look as alarming as the worst possible week. `marks` (counts aligned with
    `matrix`, e.g. files rejected whole) outlines a cell in dark red and adds '+n file(s)' under its value.
    """
    if matrix.empty or matrix.shape[1] == 0:
        return None
    values = matrix.to_numpy(dtype=float)
    marked = marks is not None and bool((marks.to_numpy(dtype=float) > 0).any())
    if not np.isfinite(values).any() and not marked:
        return None
    import matplotlib
    from matplotlib.patches import Rectangle

    finite = values[np.isfinite(values)]
    top = max(float(finite.max()) if finite.size else vmin, vmax_floor) if vmax is None else vmax
    top = top if top > vmin else vmin + 1.0
    n_sites, n_weeks = values.shape
    fig, axes = new_figure(min(11.0, 1.6 + 0.62 * n_weeks), 0.42 * n_sites + 1.3)
    ax = axes[0][0]
    colours = matplotlib.colormaps[cmap].with_extremes(bad="#eeeeee")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=colours, vmin=vmin, vmax=top, aspect="auto")
    norm = image.norm
    counts = np.zeros(values.shape) if marks is None else marks.reindex(
        index=matrix.index, columns=matrix.columns).fillna(0).to_numpy(dtype=float)
    for i in range(n_sites):
        for j in range(n_weeks):
            v = values[i, j]
            n = int(counts[i, j])
            if np.isfinite(v):
                shade = float(norm(v))
                dark = shade > 0.6 if cmap not in ("RdYlGn",) else (shade < 0.25 or shade > 0.85)
                text, ink = cell_text(v), "white" if dark else "#1d2733"
            else:
                text, ink = "–", "#5b6675" if n else "#9a9a9a"
            if n:
                text += "\n" + files_note(n)
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=MARK, linewidth=1.6))
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=ink, linespacing=1.1)
    ax.set_xticks(range(n_weeks), [data_label(c) for c in matrix.columns], rotation=45, ha="right")
    ax.set_yticks(range(n_sites), [data_label(s) for s in matrix.index])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel("ISO week of ingestion")
    fig.colorbar(image, ax=ax, label=label, shrink=0.9, pad=0.01)
    return figure_svg(fig, key)
