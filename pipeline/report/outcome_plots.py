"""The outcome report's figures, each drawn from one frame of `outcome_tables` and returned as inline SVG.

Text from the data (site ids, strata, arms, modalities) goes through `svg.label`; `svg.figure_svg` draws
every text literally (no `$…$` math).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from markupsafe import Markup

from pipeline.report.outcome_tables import CENTRALIZATION, FLARE_CLASSES, SIGN_GROUPS
from pipeline.report.svg import GREY, colour, figure_svg, label, new_figure

CENTRALIZATION_COLOURS = {"centralized": "#009E73", "unchanged": "#BBBBBB", "peripheralized": "#D55E00"}
SIGN_COLOURS = {"0": "#DDDDDD", "1": "#A6CEE3", "2": "#1F78B4", "3+": "#08306B"}
FLARE_COLOURS = {"no_flare": "#009E73", "expected_flare": "#E69F00", "prolonged_flare": "#D55E00",
                 "no_baseline": "#BBBBBB"}


def enrolment_figure(table: pd.DataFrame, arms: list[str], key: str) -> Markup | None:
    sites = table[~table["site"].isin(["total"])]
    if sites.empty or int(sites["total"].sum()) == 0:
        return None
    fig, axes = new_figure(7.0, 0.45 * len(sites) + 1.2)
    ax = axes[0][0]
    y = np.arange(len(sites))[::-1]
    left = np.zeros(len(sites))
    for i, arm in enumerate(arms):
        values = sites[arm].to_numpy(dtype=float)
        ax.barh(y, values, left=left, color=colour(i), label=label(arm), height=0.6)
        for yi, lft, v in zip(y, left, values, strict=True):
            if v > 0:
                ax.text(lft + v / 2, yi, f"{int(v)}", ha="center", va="center", color="white", fontsize=8)
        left += values
    ax.set_yticks(y, [label(s) for s in sites["site"]])
    ax.set_xlabel("patients")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside upper center", ncols=len(arms))
    return figure_svg(fig, key)


def trajectory_figure(means: pd.DataFrame, sample: pd.DataFrame, arms: list[str], key: str) -> Markup | None:
    if means.empty:
        return None
    fig, axes = new_figure(7.5, 3.8)
    ax = axes[0][0]
    for i, arm in enumerate(arms):
        for _pid, one in sample[sample["arm"] == arm].groupby("patient_id"):
            ax.plot(one["week"], one["value"], color=colour(i), alpha=0.25, linewidth=0.8)
        m = means[means["arm"] == arm]
        if m.empty:
            continue
        ax.fill_between(m["week"], m["ci_low"].astype(float), m["ci_high"].astype(float), color=colour(i),
                        alpha=0.2, linewidth=0)
        ax.plot(m["week"], m["mean"], color=colour(i), linewidth=2, marker="o", markersize=3,
                label=f"{label(arm)} (mean, 95% CI)")
    ax.set_ylim(0, 10)
    ax.set_xlabel("analysis week (0 = baseline)")
    ax.set_ylabel("leg pain (NRS 0–10)")
    ax.plot([], [], color=GREY, alpha=0.6, linewidth=0.8, label="individual patients (sample)")
    ax.legend(loc="upper right")
    return figure_svg(fig, key)


def _stacked_by_arm(frame: pd.DataFrame, arms: list[str], groups: tuple[str, ...], colours: dict[str, str],
                    ylabel: str, key: str) -> Markup | None:
    present = [a for a in arms if (frame["arm"] == a).any()]
    if not present:
        return None
    fig, axes = new_figure(7.5, 2.0 * len(present) + 0.6, nrows=len(present), sharex=True)
    for row, arm in enumerate(present):
        ax = axes[row][0]
        part = frame[frame["arm"] == arm]
        bottom = np.zeros(len(part))
        for g in groups:
            values = part[g].to_numpy(dtype=float)
            ax.bar(part["week"], values, bottom=bottom, color=colours[g], label=g, width=0.85)
            bottom += values
        ax.set_ylim(0, 1)
        ax.set_yticks([0, 0.5, 1], ["0%", "50%", "100%"])
        ax.set_title(label(arm), loc="left")
        ax.set_ylabel(ylabel)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside right upper")
    axes[-1][0].set_xlabel("analysis week")
    return figure_svg(fig, key)


def centralisation_figure(shares: pd.DataFrame, arms: list[str], key: str) -> Markup | None:
    return _stacked_by_arm(shares, arms, CENTRALIZATION, CENTRALIZATION_COLOURS, "share of patients", key)


def improvement_figure(shares: pd.DataFrame, arms: list[str], key: str) -> Markup | None:
    return _stacked_by_arm(shares, arms, SIGN_GROUPS, SIGN_COLOURS, "share of patients", key)


def km_figure(steps: pd.DataFrame, summary: pd.DataFrame, arms: list[str], p: float | None, key: str) -> Markup | None:
    if steps.empty:
        return None
    fig, axes = new_figure(7.5, 3.8)
    ax = axes[0][0]
    medians = {str(a): m for a, m in zip(summary["arm"], summary["median_weeks"], strict=True)}
    for i, arm in enumerate(arms):
        part = steps[steps["arm"] == arm]
        if part.empty:
            continue
        t = np.concatenate([[0.0], part["time_weeks"].to_numpy(dtype=float)])
        s = np.concatenate([[1.0], part["survival"].to_numpy(dtype=float)])
        med = medians.get(arm)
        text = f"median {med:.1f} wk" if med is not None and pd.notna(med) else "median not reached"
        ax.step(t, s, where="post", color=colour(i), linewidth=1.8, label=f"{label(arm)}: {text}")
        cens = part[part["censored"].astype(float) > 0]
        ax.plot(cens["time_weeks"].astype(float), cens["survival"].astype(float), linestyle="none", marker="|",
                markersize=7, color=colour(i))
    ax.axhline(0.5, color=GREY, linestyle=":", linewidth=1)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.set_xlabel("weeks since randomisation")
    ax.set_ylabel("proportion not yet recovered")
    ptxt = "log-rank p: n/a" if p is None else ("log-rank p < 0.001" if p < 0.001 else f"log-rank p = {p:.3f}")
    ax.set_title(ptxt, loc="right", fontweight="normal")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=max(1, len(arms)))
    return figure_svg(fig, key)


def forest_figure(rows: pd.DataFrame, arms: list[str], key: str) -> Markup | None:
    if rows.empty or rows["rate_per_100pw"].notna().sum() == 0:
        return None
    fig, axes = new_figure(7.0, 0.32 * len(rows) + 1.1)
    ax = axes[0][0]
    y = np.arange(len(rows))[::-1]
    labels = []
    for yi, row in zip(y, rows.itertuples(index=False), strict=True):
        kind, name = str(row.stratum_type), str(row.stratum)
        labels.append("Overall" if kind == "overall" else f"{kind}: {label(name)}")
        if pd.isna(row.rate_per_100pw):
            ax.text(0, yi, "  no patients at risk", va="center", color=GREY, fontsize=8)
            continue
        c = "#555555"
        if kind == "overall":
            c = "#000000"
        elif kind == "arm" and name in arms:
            c = colour(arms.index(name))
        lo, hi = float(row.rate_ci_low), float(row.rate_ci_high)
        ax.plot([lo, hi], [yi, yi], color=c, linewidth=1.4)
        ax.plot([float(row.rate_per_100pw)], [yi], marker="D" if kind == "overall" else "s", color=c, markersize=5)
    overall = rows[rows["stratum_type"] == "overall"]["rate_per_100pw"].dropna()
    if len(overall):
        ax.axvline(float(overall.iloc[0]), color=GREY, linestyle=":", linewidth=1)
    ax.set_yticks(y, labels)
    ax.set_xlim(left=0)
    ax.set_xlabel("incident red flags (any) per 100 patient-weeks, exact Poisson 95% CI")
    return figure_svg(fig, key)


def flare_figure(summary: pd.DataFrame, key: str) -> Markup | None:
    if summary.empty:
        return None
    fig, axes = new_figure(7.0, 0.4 * len(summary) + 1.3)
    ax = axes[0][0]
    y = np.arange(len(summary))[::-1]
    totals = summary["treatments"].to_numpy(dtype=float)
    left = np.zeros(len(summary))
    for cls in FLARE_CLASSES:
        share = summary[cls].to_numpy(dtype=float) / np.where(totals > 0, totals, 1)
        ax.barh(y, share, left=left, color=FLARE_COLOURS[cls], label=cls.replace("_", " "), height=0.6)
        left += share
    ax.set_yticks(y, [f"{label(m)} (n={int(n)})" for m, n in zip(summary["modality"], totals, strict=True)])
    ax.set_xlim(0, 1)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0%", "25%", "50%", "75%", "100%"])
    ax.set_xlabel("share of treatments")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=4)
    return figure_svg(fig, key)
