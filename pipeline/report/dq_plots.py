"""The dashboard's heatmaps: sites (rows) × ingestion weeks (columns), each cell labelled with its value."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from markupsafe import Markup

from pipeline.report.svg import figure_svg, new_figure


def heatmap(matrix: pd.DataFrame, key: str, cmap: str, label: str, cell_text: Callable[[float], str],
            vmin: float = 0.0, vmax: float | None = None, vmax_floor: float = 0.0) -> Markup | None:
    """A labelled heatmap; missing cells (no file that week) are grey.

    The colour scale runs from `vmin` to `vmax`, or to the largest value but at least `vmax_floor`, so a
    1% rejection rate does not look as alarming as the worst possible week.
    """
    if matrix.empty or matrix.shape[1] == 0 or not np.isfinite(matrix.to_numpy(dtype=float)).any():
        return None
    import matplotlib

    values = matrix.to_numpy(dtype=float)
    top = max(float(np.nanmax(values)), vmax_floor) if vmax is None else vmax
    top = top if top > vmin else vmin + 1.0
    n_sites, n_weeks = values.shape
    fig, axes = new_figure(min(11.0, 1.6 + 0.62 * n_weeks), 0.42 * n_sites + 1.3)
    ax = axes[0][0]
    colours = matplotlib.colormaps[cmap].with_extremes(bad="#eeeeee")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=colours, vmin=vmin, vmax=top, aspect="auto")
    norm = image.norm
    for i in range(n_sites):
        for j in range(n_weeks):
            v = values[i, j]
            if np.isfinite(v):
                shade = float(norm(v))
                dark = shade > 0.6 if cmap not in ("RdYlGn",) else (shade < 0.25 or shade > 0.85)
                ax.text(j, i, cell_text(v), ha="center", va="center", fontsize=7,
                        color="white" if dark else "#1d2733")
            else:
                ax.text(j, i, "–", ha="center", va="center", fontsize=7, color="#9a9a9a")
    ax.set_xticks(range(n_weeks), [str(c) for c in matrix.columns], rotation=45, ha="right")
    ax.set_yticks(range(n_sites), [str(s) for s in matrix.index])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel("ISO week of ingestion")
    fig.colorbar(image, ax=ax, label=label, shrink=0.9, pad=0.01)
    return figure_svg(fig, key)
