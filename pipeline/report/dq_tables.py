"""The numbers behind the data-quality dashboard (pure pandas over dq_site_week, quarantine, batches)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from pipeline.config import Study
from pipeline.report.dq import DQStatus, delivery_rows, iso_week, week_label
from pipeline.report.escape import redact_phi, shorten
from pipeline.rules import names as rule_names

WEEK_COLUMNS = ("site_id", "iso_week", "received", "accepted", "rejected", "rejected_by_rule", "warnings",
                "warnings_by_rule", "duplicates", "late_entries", "lag_p50_hours", "lag_p90_hours",
                "diary_completeness")


def site_order(study: Study, *frames: pd.DataFrame) -> list[str]:
    """Registered sites in configuration order, then any other site found in the data."""
    sites = list(study.site_ids)
    for frame in frames:
        if "site_id" in frame.columns:
            sites += sorted({str(s) for s in frame["site_id"].dropna()} - set(sites))
    return sites


def rejected_by_rule(quarantine: pd.DataFrame) -> pd.DataFrame:
    """Quarantined rows (and files) per site, ISO week of ingestion and rule."""
    cols = ["site_id", "iso_week", "rule", "rows"]
    if quarantine.empty:
        return pd.DataFrame(columns=cols)
    rows = quarantine.assign(iso_week=[iso_week(t) for t in quarantine["ingested_at"]]).explode("rules")
    rows = rows.dropna(subset=["rules"])
    counts = rows.groupby(["site_id", "iso_week", "rules"]).size().reset_index(name="rows")
    return counts.rename(columns={"rules": "rule"})[cols]


def rule_counts_text(value: Any, limit: int = 6) -> str:
    """A {rule: n} map (dict or JSON text, as dq_site_week holds it) as 'rule n, rule n', most frequent first."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    counts = json.loads(value) if isinstance(value, str) else dict(value)
    ordered = sorted(((str(r), int(n)) for r, n in counts.items()), key=lambda x: (-x[1], x[0]))
    more = f", {len(ordered) - limit} more rules" if len(ordered) > limit else ""
    return ", ".join(f"{r} {n}" for r, n in ordered[:limit]) + more


def week_table(study: Study, dq_site_week: pd.DataFrame, quarantine: pd.DataFrame) -> pd.DataFrame:
    """One row per site and ingestion week: the dq_site_week counts plus rejections and warnings by rule.

    By-rule counts come from dq_site_week's `rejected_by_rule`/`warnings_by_rule` when the derive step
    provides them, otherwise rejections are counted from the quarantine.
    """
    if dq_site_week.empty:
        return pd.DataFrame(columns=list(WEEK_COLUMNS))
    table = dq_site_week.assign(site_id=dq_site_week["site_id"].astype(str),
                                iso_week=[week_label(w) for w in dq_site_week["iso_week"]])
    if "rejected_by_rule" in table.columns and table["rejected_by_rule"].notna().any():
        table["rejected_by_rule"] = [rule_counts_text(v) for v in table["rejected_by_rule"]]
    else:
        by_rule = rejected_by_rule(quarantine)
        text: dict[tuple[str, str], str] = {}
        for (site, week), part in by_rule.groupby(["site_id", "iso_week"]):
            text[(str(site), str(week))] = rule_counts_text(dict(zip(part["rule"], part["rows"], strict=True)))
        table["rejected_by_rule"] = [text.get((s, w), "") for s, w in zip(table["site_id"], table["iso_week"],
                                                                           strict=True)]
    table["warnings_by_rule"] = [rule_counts_text(v) for v in table["warnings_by_rule"]] \
        if "warnings_by_rule" in table.columns else ""
    order = {s: i for i, s in enumerate(site_order(study, table))}
    table = table.assign(_k=table["site_id"].map(order)).sort_values(["_k", "iso_week"])
    return table[list(WEEK_COLUMNS)].reset_index(drop=True)


def heat_matrix(weeks: pd.DataFrame, sites: Sequence[str], metric: str) -> pd.DataFrame:
    """Sites (rows) × ingestion weeks (columns) of one metric; `rejected_share` = rejected / received."""
    all_weeks = sorted(set(weeks["iso_week"]))
    if metric == "rejected_share":
        received = weeks["received"].astype(float)
        values = weeks["rejected"].astype(float) / received.where(received > 0)
    else:
        values = weeks[metric].astype(float)
    frame = pd.DataFrame({"site_id": weeks["site_id"], "iso_week": weeks["iso_week"], "v": values})
    matrix = frame.pivot_table(index="site_id", columns="iso_week", values="v", aggfunc="mean", dropna=False)
    return matrix.reindex(index=list(sites), columns=all_weeks).astype(float)


def files_rejected_whole(batches: pd.DataFrame) -> pd.DataFrame:
    """Files rejected whole (unreadable, not UTF-8, unregistered site, …): none of their rows was read, so they
    count in no row total or share. One row per file, by site and ISO week of ingestion, latest first."""
    cols = ["site_id", "iso_week", "source_file", "file_rules", "ingested_at"]
    if batches.empty:
        return pd.DataFrame(columns=cols)
    files = batches[batches["status"].astype(str) == "rejected"]
    files = files.assign(site_id=files["site_id"].astype(str),
                         iso_week=[iso_week(t) for t in files["ingested_at"]])
    return files.sort_values(["ingested_at", "site_id", "source_file"], ascending=[False, True, True])[
        cols].reset_index(drop=True)


def files_rejected_matrix(files: pd.DataFrame, sites: Sequence[str], weeks: Sequence[str]) -> pd.DataFrame:
    """Sites × ingestion weeks: how many files were rejected whole (0 where none)."""
    counts = files.groupby(["site_id", "iso_week"]).size() if len(files) else pd.Series(dtype=float)
    matrix = counts.unstack(fill_value=0) if len(counts) else pd.DataFrame()
    return matrix.reindex(index=list(sites), columns=list(weeks)).fillna(0).astype(int)


def site_summary(study: Study, batches: pd.DataFrame, weeks: pd.DataFrame, status: DQStatus,
                 now: datetime) -> pd.DataFrame:
    """Per site: deliveries, row totals, rejection rate, last file and days since, and the monitor's flags."""
    deliveries = delivery_rows(batches, now)
    silent = {s.site_id for s in status.silent_sites}
    jumps = {j.site_id for j in status.rejection_jumps}
    rows = []
    for site in site_order(study, batches, weeks):
        own = deliveries[deliveries["site_id"].astype(str) == site]
        wk = weeks[weeks["site_id"] == site]
        received = int(wk["received"].fillna(0).sum()) if len(wk) else int(own["received"].fillna(0).sum())
        rejected = int(wk["rejected"].fillna(0).sum()) if len(wk) else int(own["rejected"].fillna(0).sum())
        last = own["ingested_at"].max() if len(own) else None
        flags = [name for name, hit in (("not registered", site not in study.site_ids), ("silent", site in silent),
                                        ("rejection jump", site in jumps)) if hit]
        rows.append({
            "site_id": site, "name": study_site_name(study, site), "files": len(own),
            "files_rejected": int((own["status"] == "rejected").sum()) if len(own) else 0,
            "received": received, "accepted": int(wk["accepted"].fillna(0).sum()) if len(wk) else int(
                own["accepted"].fillna(0).sum()),
            "rejected": rejected, "rejection_rate": rejected / received if received else None,
            "warnings": int(wk["warnings"].fillna(0).sum()) if len(wk) else int(own["warnings"].fillna(0).sum()),
            "duplicates": int(wk["duplicates"].fillna(0).sum()) if len(wk) else int(own["duplicates"].fillna(0).sum()),
            "last_file_at": last,
            "days_since_last_file": None if last is None else (now - pd.Timestamp(last).to_pydatetime()
                                                               ).total_seconds() / 86400,
            "status": ", ".join(flags) or "ok",
        })
    return pd.DataFrame(rows)


def study_site_name(study: Study, site: str) -> str:
    return next((s.name for s in study.sites if s.id == site), "(not registered)")


#: Rules listed first among rules with as many rows: a security event and possible PHI; then come the rules
#: that reject whole files (their rows were not read, so a red flag in them raised no alert).
PRIORITY_RULES = ("site_mismatch", "phi_in_comment")


def top_rules(quarantine: pd.DataFrame, limit: int = 10) -> pd.DataFrame:
    """The rules that rejected most rows or files: rows, sites affected, last seen.

    The `limit` largest, and every rule tied with the last of them: a tie never hides a rule. Among rules
    with as many rows, PRIORITY_RULES and then file rejections come first, then by name.
    """
    cols = ["rule", "rows", "sites", "last_seen"]
    if quarantine.empty:
        return pd.DataFrame(columns=cols)
    rows = quarantine.explode("rules").dropna(subset=["rules"])
    grouped = rows.groupby("rules").agg(rows=("site_id", "size"), sites=("site_id", "nunique"),
                                        last_seen=("ingested_at", "max")).reset_index()
    grouped = grouped.rename(columns={"rules": "rule"})
    rank = {r: i for i, r in enumerate((*PRIORITY_RULES, *rule_names("file_rejected")))}
    grouped = grouped.assign(_p=[rank.get(str(r), len(rank)) for r in grouped["rule"]]).sort_values(
        ["rows", "_p", "rule"], ascending=[False, True, True])
    if len(grouped) > limit:
        grouped = grouped[grouped["rows"] >= grouped["rows"].iloc[limit - 1]]
    return grouped[cols].reset_index(drop=True)


def _message_for(rules: list[str], messages: list[str], rule: str) -> str:
    if len(rules) == len(messages) and rule in rules:
        return str(messages[rules.index(rule)])
    return "; ".join(str(m) for m in messages)


def rule_examples(quarantine: pd.DataFrame, rule: str, limit: int = 3) -> pd.DataFrame:
    """The latest rows a rule rejected, with the message and the original record (site text, shortened)."""
    cols = ["site_id", "source_file", "source_row", "event_id", "message", "raw"]
    hits = quarantine[[rule in r for r in quarantine["rules"]]]
    hits = hits.sort_values(["ingested_at", "source_file", "source_row"], ascending=[False, True, True]).head(limit)
    return pd.DataFrame({
        "site_id": hits["site_id"], "source_file": hits["source_file"], "source_row": hits["source_row"],
        "event_id": hits["event_id"],
        "message": [_message_for(list(r), list(m), rule) for r, m in zip(hits["rules"], hits["messages"],
                                                                        strict=True)],
        "raw": [shorten(redact_phi(x, r), 300) for x, r in zip(hits["raw"], hits["rules"], strict=True)],
    }, columns=cols).reset_index(drop=True)
