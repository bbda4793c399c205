"""Study configuration (DTS §1) and the on-disk layout of a deployment."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

#: one plain address: no display name, no list, nothing that could add a mail header
EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")


class ConfigError(ValueError):
    """The study configuration cannot be used."""


@dataclass(frozen=True)
class Site:
    id: str
    name: str = ""
    contact_email: str = ""  # optional: mailed when the site's query list gains new queries (pipeline.notify)


@dataclass(frozen=True)
class Study:
    study_id: str
    arms: tuple[str, ...]
    sites: tuple[Site, ...]
    late_entry_days: int = 7
    max_file_bytes: int = 2_147_483_648
    clock_skew_minutes: int = 5
    silent_site_days: int = 7
    outbox: str = "outbox"  # per-site outbox (query lists, data-quality summary), relative to the study file

    @property
    def site_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.sites)


def parse_study(text: str) -> Study:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"study configuration is not valid TOML: {exc}") from exc
    try:
        sites = tuple(Site(id=str(s["id"]), name=str(s.get("name", "")),
                           contact_email=str(s.get("contact_email", "")).strip()) for s in raw.get("sites", []))
        study = Study(
            study_id=str(raw["study_id"]),
            arms=tuple(str(a) for a in raw["arms"]),
            sites=sites,
            late_entry_days=int(raw.get("late_entry_days", 7)),
            max_file_bytes=int(raw.get("max_file_bytes", 2_147_483_648)),
            clock_skew_minutes=int(raw.get("clock_skew_minutes", 5)),
            silent_site_days=int(raw.get("silent_site_days", 7)),
            outbox=str(raw.get("outbox", "outbox")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"study configuration is missing or has a bad key: {exc}") from exc
    if not study.arms:
        raise ConfigError("study configuration names no arms")
    ids = study.site_ids
    if len(set(ids)) != len(ids):
        raise ConfigError("study configuration registers a site twice")
    for sid in ids:
        # site ids become folder names: never let one escape the landing zone
        if not sid or not all(c.isalnum() or c in "-_" for c in sid):
            raise ConfigError(f"site id {sid!r} must be letters, digits, '-' or '_'")
    for site in study.sites:
        if site.contact_email and not EMAIL.fullmatch(site.contact_email):
            raise ConfigError(f"site {site.id}: contact_email {site.contact_email!r} is not one e-mail address")
    if not study.outbox.strip():
        raise ConfigError("study configuration: outbox must name a folder")
    return study


def load_study(path: Path) -> Study:
    try:
        return parse_study(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"study configuration {path} not found") from exc


@dataclass(frozen=True)
class Paths:
    """Where a deployment keeps its landing zone and warehouse."""

    study: Path = Path("study.toml")
    landing: Path = Path("landing")
    warehouse: Path = Path("warehouse")

    @property
    def events_dir(self) -> Path:
        """Append-only accepted events: events/site=<id>/<batch_id>.parquet."""
        return self.warehouse / "events"

    @property
    def quarantine_dir(self) -> Path:
        return self.warehouse / "quarantine"

    @property
    def alerts_dir(self) -> Path:
        return self.warehouse / "alerts"

    @property
    def batches_dir(self) -> Path:
        """One committed record per ingested file: the ledger and the commit point."""
        return self.warehouse / "batches"

    @property
    def notifications_dir(self) -> Path:
        """Append-only notification ledger: which alert was mailed to whom, when (pipeline.notify)."""
        return self.warehouse / "notifications"

    @property
    def staging_dir(self) -> Path:
        return self.warehouse / ".staging"

    @property
    def validations_dir(self) -> Path:
        """Great Expectations validation results (JSON), kept for Data Docs."""
        return self.warehouse / "validations"

    @property
    def queries_dir(self) -> Path:
        """Per-site query lists for site coordinators."""
        return self.warehouse / "queries"

    @property
    def locks_dir(self) -> Path:
        return self.warehouse / "locks"

    @property
    def db_path(self) -> Path:
        return self.warehouse / "trial.duckdb"

    @property
    def reports_dir(self) -> Path:
        return self.warehouse / "reports"


def outbox_dir(paths: Paths, study: Study) -> Path:
    """The study's outbox: `outbox` of study.toml, relative to the study file; never inside the landing zone.

    Ingest reads every folder of the landing zone, and must never read what it wrote for the sites.
    """
    root = (paths.study.parent / study.outbox).resolve()
    landing = paths.landing.resolve()
    if root == landing or root.is_relative_to(landing) or landing.is_relative_to(root):
        raise ConfigError(f"outbox {root} must lie outside the landing zone {landing} (study.toml key outbox)")
    return root


def paths_from_env(environ: dict[str, str] | None = None) -> Paths:
    """Paths for scheduled jobs: TRIALPIPE_STUDY, TRIALPIPE_LANDING, TRIALPIPE_WAREHOUSE."""
    import os

    env = os.environ if environ is None else environ
    return Paths(
        Path(env.get("TRIALPIPE_STUDY", "study.toml")),
        Path(env.get("TRIALPIPE_LANDING", "landing")),
        Path(env.get("TRIALPIPE_WAREHOUSE", "warehouse")),
    )
