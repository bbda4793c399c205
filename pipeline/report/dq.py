"""Data-quality monitoring from the batch ledger: silent sites, rejection jumps, issues across runs.

Definitions (docs/reports.md explains them to site coordinators):

* A **delivery** is a batch with status ``ingested`` or ``rejected`` (a new
  file, whether or not it could be read); ``file_duplicate`` is not one.
* A site is **silent** when its last delivery is at least
  ``study.silent_site_days`` days before ``now``, or it never delivered.
* A site's **rejection rate** in an ISO week of ingestion is rejected rows /
  received rows over its deliveries that week. Its latest week with received
  rows **jumped** when there is at least one earlier such week and the rate is
  at least twice the mean of the earlier weekly rates and at least 10
  percentage points above it.
* An **issue** is a (site, rule) pair: a DTS §5 rule that rows (or a whole
  file) of the site's latest ingestion week broke, plus ``silent_site`` and
  ``rejection_jump``. Comparing the issues of this run with those of the last
  run saved in ``reports/dq_state.json`` gives what is new, resolved and persisting.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from pipeline.config import Paths, Study
from pipeline.store.files import atomic_write_bytes
from pipeline.store.warehouse import dataset_sql

log = logging.getLogger(__name__)

DELIVERY_STATUSES = ("ingested", "rejected")
JUMP_FACTOR = 2.0
JUMP_MIN_POINTS = 0.10
STATE_FILE = "dq_state.json"

Issue = tuple[str, str]


def iso_week(ts: Any) -> str:
    """'YYYY-Www' of an instant (UTC), the label of an ingestion week."""
    t = pd.Timestamp(ts)
    t = t.tz_convert("UTC") if t.tzinfo else t
    year, week, _ = t.isocalendar()
    return f"{year}-W{week:02d}"


def week_label(value: Any) -> str:
    """An `iso_week` value as the derive step may give it (text, date, timestamp) as 'YYYY-Www'."""
    if isinstance(value, str) and len(value) >= 7 and "-W" in value:
        year, week = value.split("-W", 1)
        return f"{int(year)}-W{int(week[:2]):02d}"
    return iso_week(value)


@dataclass(frozen=True)
class SilentSite:
    site_id: str
    last_delivery_at: datetime | None
    days_silent: float | None

    def __str__(self) -> str:
        if self.last_delivery_at is None:
            return f"{self.site_id}: no file delivered yet"
        return (f"{self.site_id}: no new file for {self.days_silent:.1f} days "
                f"(last {self.last_delivery_at:%Y-%m-%d %H:%M} UTC)")


@dataclass(frozen=True)
class RejectionJump:
    site_id: str
    iso_week: str
    rate: float
    previous_mean: float
    received: int
    rejected: int

    def __str__(self) -> str:
        return (f"{self.site_id}: {self.rate:.0%} of rows rejected in {self.iso_week} ({self.rejected}/"
                f"{self.received}) against {self.previous_mean:.0%} in earlier weeks")


@dataclass(frozen=True)
class DQStatus:
    """What the daily check found. `ok` when no site is silent and no rejection rate jumped."""

    now: datetime
    silent_sites: tuple[SilentSite, ...]
    rejection_jumps: tuple[RejectionJump, ...]
    silent_site_days: int = 7

    @property
    def ok(self) -> bool:
        return not self.silent_sites and not self.rejection_jumps

    def describe(self) -> str:
        head = f"data-quality check at {self.now.astimezone(UTC).replace(microsecond=0):%Y-%m-%dT%H:%M:%SZ}: "
        if self.ok:
            return head + "every site delivered recently; no jump in rejections"
        lines = [head + f"{len(self.silent_sites)} silent site(s), {len(self.rejection_jumps)} rejection jump(s)"]
        lines += [f"  silent (≥ {self.silent_site_days} days): {s}" for s in self.silent_sites]
        lines += [f"  rejection jump: {j}" for j in self.rejection_jumps]
        return "\n".join(lines)


def delivery_rows(batches: pd.DataFrame, now: datetime) -> pd.DataFrame:
    at = pd.to_datetime(batches["ingested_at"], utc=True)
    keep = batches["status"].astype(str).isin(DELIVERY_STATUSES) & (at <= pd.Timestamp(now))
    return batches[keep].assign(ingested_at=at[keep])


def silent_sites(batches: pd.DataFrame, study: Study, now: datetime) -> tuple[SilentSite, ...]:
    deliveries = delivery_rows(batches, now)
    last = deliveries.groupby("site_id")["ingested_at"].max() if len(deliveries) else pd.Series(dtype=object)
    out = []
    for site in study.site_ids:
        if site not in last.index:
            out.append(SilentSite(site, None, None))
            continue
        at = pd.Timestamp(last[site]).to_pydatetime()
        days = (now - at).total_seconds() / 86400
        if days >= study.silent_site_days:
            out.append(SilentSite(site, at, days))
    return tuple(out)


def weekly_rejection(batches: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Per site and ISO week of ingestion: received, rejected, rate (weeks with received rows only)."""
    deliveries = delivery_rows(batches, now)
    cols = ["site_id", "iso_week", "received", "rejected", "rate"]
    if deliveries.empty:
        return pd.DataFrame(columns=cols)
    frame = deliveries.assign(iso_week=[iso_week(t) for t in deliveries["ingested_at"]],
                              received=deliveries["received"].fillna(0).astype(int),
                              rejected=deliveries["rejected"].fillna(0).astype(int))
    weekly = frame.groupby(["site_id", "iso_week"], as_index=False)[["received", "rejected"]].sum()
    weekly = weekly[weekly["received"] > 0]
    return weekly.assign(rate=weekly["rejected"] / weekly["received"])[cols].sort_values(
        ["site_id", "iso_week"]).reset_index(drop=True)


def rejection_jumps(batches: pd.DataFrame, now: datetime) -> tuple[RejectionJump, ...]:
    out = []
    for site, weeks in weekly_rejection(batches, now).groupby("site_id", sort=True):
        if len(weeks) < 2:
            continue
        latest, earlier = weeks.iloc[-1], weeks.iloc[:-1]
        mean = float(earlier["rate"].mean())
        rate = float(latest["rate"])
        if rate >= JUMP_FACTOR * mean and rate - mean >= JUMP_MIN_POINTS:
            out.append(RejectionJump(str(site), str(latest["iso_week"]), rate, mean, int(latest["received"]),
                                     int(latest["rejected"])))
    return tuple(out)


def monitor(batches: pd.DataFrame, study: Study, now: datetime) -> DQStatus:
    """The check over a batch ledger (pure)."""
    return DQStatus(now, silent_sites(batches, study, now), rejection_jumps(batches, now), study.silent_site_days)


def dq_monitor(paths: Paths, study: Study, now: datetime | None = None) -> DQStatus:
    """The daily check (Airflow): reads only the batch ledger, so it works before anything was derived."""
    now = now or datetime.now(UTC)
    con = duckdb.connect()
    try:
        batches = con.sql(dataset_sql(paths, "batches")).to_arrow_table().to_pandas()
    finally:
        con.close()
    return monitor(batches, study, now)


def current_issues(quarantine: pd.DataFrame, batches: pd.DataFrame, status: DQStatus) -> dict[Issue, str]:
    """(site, rule) → what shows it, for the site's latest ingestion week, plus the monitor's findings."""
    issues: dict[Issue, str] = {}
    deliveries = delivery_rows(batches, status.now)
    latest = {str(s): iso_week(t) for s, t in deliveries.groupby("site_id")["ingested_at"].max().items()} \
        if len(deliveries) else {}
    if len(quarantine):
        weeks = [iso_week(t) for t in quarantine["ingested_at"]]
        rows = quarantine.assign(_week=weeks)
        rows = rows[[latest.get(str(s)) == w for s, w in zip(rows["site_id"], rows["_week"], strict=True)]]
        exploded = rows.explode("rules").dropna(subset=["rules"])
        for (site, rule), n in exploded.groupby(["site_id", "rules"]).size().items():
            issues[(str(site), str(rule))] = f"{n} row(s) or file(s) in {latest[str(site)]}"
    for s in status.silent_sites:
        issues[(s.site_id, "silent_site")] = str(s).split(": ", 1)[1]
    for j in status.rejection_jumps:
        issues[(j.site_id, "rejection_jump")] = str(j).split(": ", 1)[1]
    return issues


@dataclass(frozen=True)
class IssueChanges:
    """Issues of this run against the last saved run (None when there was none)."""

    new: tuple[tuple[str, str, str], ...]
    persisting: tuple[tuple[str, str, str], ...]
    resolved: tuple[tuple[str, str, str], ...]
    previous_run: str | None


def compare_issues(current: dict[Issue, str], previous: dict[str, Any] | None) -> IssueChanges:
    before: dict[Issue, str] = {}
    if previous:
        before = {(str(i["site_id"]), str(i["rule"])): str(i.get("detail", "")) for i in previous.get("issues", [])}
    new = tuple((s, r, d) for (s, r), d in sorted(current.items()) if (s, r) not in before)
    persisting = tuple((s, r, d) for (s, r), d in sorted(current.items()) if (s, r) in before)
    resolved = tuple((s, r, d) for (s, r), d in sorted(before.items()) if (s, r) not in current)
    return IssueChanges(new, persisting, resolved, previous.get("generated_at") if previous else None)


def state_path(paths: Paths) -> Path:
    return paths.reports_dir / STATE_FILE


def load_state(paths: Paths) -> dict[str, Any] | None:
    path = state_path(paths)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None
    return state if isinstance(state, dict) else None


def save_state(paths: Paths, current: dict[Issue, str], generated_at: datetime, fingerprint: str) -> Path:
    state = {
        "generated_at": generated_at.astimezone(UTC).isoformat(),
        "fingerprint": fingerprint,
        "issues": [{"site_id": s, "rule": r, "detail": d} for (s, r), d in sorted(current.items())],
    }
    path = state_path(paths)
    atomic_write_bytes(json.dumps(state, indent=1).encode("utf-8"), path)
    return path
