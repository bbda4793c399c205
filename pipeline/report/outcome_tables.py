"""The numbers behind the outcome report's figures, computed from the derived tables (pure pandas).

Each function takes derived tables (interface.md columns) and returns a small
frame; the figure is drawn from exactly that frame and the frame is shown
under the figure, so what a reader sees and what was plotted cannot differ.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from pipeline.config import Study

CENTRALIZATION = ("centralized", "unchanged", "peripheralized")
SIGN_GROUPS = ("0", "1", "2", "3+")
FLARE_CLASSES = ("no_flare", "expected_flare", "prolonged_flare", "no_baseline")
FLAGS = ("BLADDER", "BOWEL", "SADDLE", "MOTOR", "BILATERAL", "PARESTHESIA_SPREAD", "OTHER", "ANY")
RECOVERED_AT = (2, 4, 8, 12, 26, 52)


def arms_in(study: Study, *frames: pd.DataFrame) -> list[str]:
    """The study's arms in configuration order, then any other arm found in the data."""
    arms = list(study.arms)
    for frame in frames:
        if "arm" in frame.columns:
            arms += sorted({str(a) for a in frame["arm"].dropna()} - set(arms))
    return arms


def _patients(*frames: pd.DataFrame) -> pd.DataFrame:
    parts = [f[["site_id", "patient_id", "arm"]] for f in frames if len(f)]
    if not parts:
        return pd.DataFrame(columns=["site_id", "patient_id", "arm"])
    both = pd.concat(parts, ignore_index=True).dropna(subset=["patient_id"])
    return both.drop_duplicates(subset=["site_id", "patient_id"]).reset_index(drop=True)


def enrolment(study: Study, trajectory: pd.DataFrame, patient_week: pd.DataFrame,
              occurrences: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Patients by site (rows) and arm (columns), with totals.

    Patients are those seen in any patient-level derived table. Enrolled
    patients without any observation yet appear only in `recovery_summary.n`;
    they are shown on a row of their own so the arm totals match it.
    """
    patients = _patients(trajectory, patient_week, occurrences)
    arms = arms_in(study, patients, summary)
    sites = list(study.site_ids) + sorted(set(patients["site_id"].dropna().astype(str)) - set(study.site_ids))
    counts = pd.crosstab(patients["site_id"].astype(str), patients["arm"].astype(str)) if len(patients) else None
    rows = []
    for site in sites:
        row = {"site": site}
        for arm in arms:
            row[arm] = int(counts.at[site, arm]) if counts is not None and site in counts.index \
                and arm in counts.columns else 0
        rows.append(row)
    n_by_arm = {str(a): int(n) for a, n in zip(summary["arm"], summary["n"], strict=True) if pd.notna(n)}
    unseen = {arm: max(0, n_by_arm.get(arm, 0) - sum(r[arm] for r in rows)) for arm in arms}
    if any(unseen.values()):
        rows.append({"site": "not yet observed", **unseen})
    frame = pd.DataFrame(rows, columns=["site", *arms])
    frame["total"] = frame[arms].sum(axis=1).astype(int)
    total = {"site": "total", **{a: int(frame[a].sum()) for a in arms}, "total": int(frame["total"].sum())}
    return pd.concat([frame, pd.DataFrame([total])], ignore_index=True)


def legpain_means(trajectory: pd.DataFrame) -> pd.DataFrame:
    """Mean leg pain (NRS) per arm and week with a t-based 95% confidence interval."""
    from scipy.special import stdtrit  # t quantile; scipy.stats is slow to import

    legpain = trajectory[(trajectory["param"] == "LEGPAIN") & trajectory["value"].notna()]
    cols = ["arm", "week", "n", "mean", "ci_low", "ci_high"]
    if legpain.empty:
        return pd.DataFrame(columns=cols)
    values = legpain.assign(value=legpain["value"].astype(float), week=legpain["week"].astype(int))
    grouped = values.groupby(["arm", "week"])["value"].agg(["count", "mean", "std"]).reset_index()
    n = grouped["count"].astype(float)
    half = stdtrit(np.maximum(n - 1, 1), 0.975) * grouped["std"] / np.sqrt(n)
    half = half.where(n >= 2)
    out = pd.DataFrame({
        "arm": grouped["arm"].astype(str), "week": grouped["week"], "n": grouped["count"].astype(int),
        "mean": grouped["mean"], "ci_low": grouped["mean"] - half, "ci_high": grouped["mean"] + half,
    })
    return out.sort_values(["arm", "week"]).reset_index(drop=True)


def _stable_rank(patient_id: str) -> str:
    return hashlib.sha256(patient_id.encode()).hexdigest()


def legpain_sample(trajectory: pd.DataFrame, per_arm: int = 6) -> pd.DataFrame:
    """Individual leg-pain trajectories of up to `per_arm` patients per arm, chosen by a hash of the id."""
    legpain = trajectory[(trajectory["param"] == "LEGPAIN") & trajectory["value"].notna()]
    cols = ["arm", "patient_id", "week", "value"]
    if legpain.empty:
        return pd.DataFrame(columns=cols)
    chosen = []
    for _arm, group in legpain.groupby("arm"):
        ids = sorted({str(p) for p in group["patient_id"]}, key=_stable_rank)[:per_arm]
        chosen.append(group[group["patient_id"].astype(str).isin(ids)])
    sample = pd.concat(chosen)[cols].assign(week=lambda f: f["week"].astype(int), value=lambda f: f["value"].astype(
        float))
    return sample.sort_values(["arm", "patient_id", "week"]).reset_index(drop=True)


def centralisation_shares(patient_week: pd.DataFrame) -> pd.DataFrame:
    """Per arm and week (≥ 1): patient-weeks by centralisation status and their shares."""
    weeks = patient_week[(patient_week["week"].astype(float) >= 1) & patient_week["centralization"].notna()]
    cols = ["arm", "week", "n", *CENTRALIZATION]
    if weeks.empty:
        return pd.DataFrame(columns=cols)
    counts = pd.crosstab([weeks["arm"].astype(str), weeks["week"].astype(int)], weeks["centralization"].astype(str))
    counts = counts.reindex(columns=list(CENTRALIZATION), fill_value=0)
    n = counts.sum(axis=1)
    shares = counts.div(n, axis=0)
    out = shares.assign(n=n).reset_index()
    out.columns = ["arm", "week", *CENTRALIZATION, "n"]
    return out[cols].sort_values(["arm", "week"]).reset_index(drop=True)


def improvement_shares(patient_week: pd.DataFrame) -> pd.DataFrame:
    """Per arm and week (≥ 1): shares of patient-weeks with 0, 1, 2, 3+ improvement signs."""
    weeks = patient_week[(patient_week["week"].astype(float) >= 1) & patient_week["improvement_signs"].notna()]
    cols = ["arm", "week", "n", *SIGN_GROUPS, "two_or_more"]
    if weeks.empty:
        return pd.DataFrame(columns=cols)
    group = weeks["improvement_signs"].astype(int).clip(upper=3).map(lambda s: "3+" if s >= 3 else str(s))
    counts = pd.crosstab([weeks["arm"].astype(str), weeks["week"].astype(int)], group)
    counts = counts.reindex(columns=list(SIGN_GROUPS), fill_value=0)
    n = counts.sum(axis=1)
    shares = counts.div(n, axis=0)
    out = shares.assign(n=n, two_or_more=shares["2"] + shares["3+"]).reset_index()
    out.columns = ["arm", "week", *SIGN_GROUPS, "n", "two_or_more"]
    return out[cols].sort_values(["arm", "week"]).reset_index(drop=True)


def km_steps(recovery_km: pd.DataFrame) -> pd.DataFrame:
    """The Kaplan–Meier curve per arm as steps starting at (0, 1): proportion not yet recovered."""
    cols = ["arm", "time_weeks", "at_risk", "events", "censored", "survival"]
    if recovery_km.empty:
        return pd.DataFrame(columns=cols)
    km = recovery_km[cols].copy()
    km["arm"] = km["arm"].astype(str)
    km["time_weeks"] = km["time_weeks"].astype(float)
    return km.sort_values(["arm", "time_weeks"]).reset_index(drop=True)


def recovery_table(summary: pd.DataFrame) -> pd.DataFrame:
    cols = ["arm", "n", "events", "median_weeks", *(f"recovered_w{w}" for w in RECOVERED_AT), "logrank_p"]
    return summary[cols].assign(arm=summary["arm"].astype(str)).reset_index(drop=True)


def logrank_p(summary: pd.DataFrame) -> float | None:
    values = summary["logrank_p"].dropna()
    return float(values.iloc[0]) if len(values) else None


def _stratum_order(study: Study, frame: pd.DataFrame) -> list[int]:
    order = {("overall", "overall"): 0}
    order.update({("site", s): 1 + i for i, s in enumerate(study.site_ids)})
    order.update({("arm", a): 1000 + i for i, a in enumerate(study.arms)})
    return [order.get((str(t), str(s)), 500 if str(t) == "site" else 2000)
            for t, s in zip(frame["stratum_type"], frame["stratum"], strict=True)]


def forest_rows(study: Study, incidence: pd.DataFrame, flag: str = "ANY") -> pd.DataFrame:
    """Incidence rate per 100 patient-weeks with its exact CI for one flag, overall, by site, by arm."""
    cols = ["stratum_type", "stratum", "at_risk", "cases", "patient_weeks", "rate_per_100pw", "rate_ci_low",
            "rate_ci_high"]
    rows = incidence[incidence["flag"].astype(str) == flag]
    return rows.assign(_k=_stratum_order(study, rows)).sort_values(["_k", "stratum"])[cols].reset_index(drop=True)


def incidence_by_flag(study: Study, incidence: pd.DataFrame, stratum_type: str = "overall") -> pd.DataFrame:
    """Cases, time at risk, rate and proportion per stratum of one kind and flag (strata, then flags, in order)."""
    rows = incidence[incidence["stratum_type"].astype(str) == stratum_type]
    rank = {f: i for i, f in enumerate(FLAGS)}
    rows = rows.assign(_s=_stratum_order(study, rows), _f=[rank.get(str(f), 99) for f in rows["flag"]])
    return rows.sort_values(["_s", "stratum", "_f"]).drop(columns=["_s", "_f"]).reset_index(drop=True)


def flare_summary(flares: pd.DataFrame) -> pd.DataFrame:
    """Per modality: treatments, counts by flare classification, flare share, median duration and rise."""
    cols = ["modality", "treatments", *FLARE_CLASSES, "flare_share", "median_duration_days", "median_rise"]
    if flares.empty:
        return pd.DataFrame(columns=cols)
    frame = flares.assign(modality=flares["modality"].astype(str), classification=flares["classification"].astype(
        str))
    counts = pd.crosstab(frame["modality"], frame["classification"]).reindex(columns=list(FLARE_CLASSES), fill_value=0)
    out = counts.reset_index()
    out["treatments"] = counts.sum(axis=1).to_numpy()
    analysable = out["treatments"] - out["no_baseline"]
    flared = out["expected_flare"] + out["prolonged_flare"]
    out["flare_share"] = (flared / analysable.where(analysable > 0)).astype(float)
    flared_rows = frame[frame["classification"].isin(["expected_flare", "prolonged_flare"])]
    rise = (flared_rows["peak_pain"].astype(float) - flared_rows["pre_pain"].astype(float)).groupby(
        flared_rows["modality"]).median()
    duration = flared_rows["duration_days"].astype(float).groupby(flared_rows["modality"]).median()
    out["median_duration_days"] = out["modality"].map(duration).astype(float)
    out["median_rise"] = out["modality"].map(rise).astype(float)
    return out[cols].sort_values("modality").reset_index(drop=True)


def alert_listing(alerts: pd.DataFrame) -> pd.DataFrame:
    """Alerts, newest first; unvalidated ones (raised on a rejected record) are marked."""
    cols = ["raised_at", "site_id", "patient_id", "flag", "occurred_at", "event_id", "validated", "source", "message"]
    if alerts.empty:
        return pd.DataFrame(columns=cols)
    return alerts.sort_values(["raised_at", "site_id", "event_id"], ascending=[False, True, True])[cols].reset_index(
        drop=True)
