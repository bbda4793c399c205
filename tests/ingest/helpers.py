"""Literal events and a throw-away deployment for ingest tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from pipeline.config import Paths, Study, load_study
from pipeline.ingest.run import ingest
from pipeline.ingest.summary import IngestSummary
from pipeline.simulate.writers import write_events
from pipeline.store.warehouse import dataset_sql

STUDY_TOML = """\
study_id = "TEST-01"
arms = ["surgery", "conservative"]
{extra}
[[sites]]
id = "NL01"
name = "Leiden"

[[sites]]
id = "NL02"
name = "The Hague"
"""

T0 = "2026-01-05T09:00:00Z"


def event(event_id: str, event_type: str, patient: str = "P1", occurred: str = T0, recorded: str | None = None,
          site: str = "NL01", **payload: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": event_type, "site_id": site, "patient_id": patient,
            "occurred_at": occurred, "recorded_at": recorded or occurred, **payload}


def enrollment(event_id: str, patient: str = "P1", occurred: str = "2026-01-01T09:00:00Z", arm: str = "surgery",
               **kw: Any) -> dict[str, Any]:
    return event(event_id, "enrollment", patient, occurred, arm=arm, age_years=44, sex="F", affected_side="left", **kw)


def symptom(event_id: str, patient: str = "P1", occurred: str = T0, leg: int = 5, **kw: Any) -> dict[str, Any]:
    base = {"leg_pain_nrs": leg, "back_pain_nrs": 3, "pain_extent": "calf", "paresthesia": "none"}
    base.update(kw)
    return event(event_id, "symptom_report", patient, occurred, **base)


@dataclass
class Deployment:
    root: Path
    paths: Paths

    @property
    def study(self) -> Study:
        return load_study(self.paths.study)

    def deliver(self, site: str, name: str, rows: list[dict[str, Any]] | bytes) -> Path:
        path = self.paths.landing / site / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(rows, bytes):
            path.write_bytes(rows)
        else:
            write_events(rows, path)
        return path

    def ingest(self, sites: list[str] | None = None) -> IngestSummary:
        return ingest(self.paths, self.study, sites=sites)

    def q(self, sql: str) -> list[tuple[Any, ...]]:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        for name in ("events", "quarantine", "alerts", "batches"):
            con.execute(f"CREATE VIEW {name} AS {dataset_sql(self.paths, name)}")
        return con.execute(sql).fetchall()


def make_deployment(root: Path, extra_toml: str = "") -> Deployment:
    root.mkdir(parents=True, exist_ok=True)
    (root / "study.toml").write_text(STUDY_TOML.format(extra=extra_toml), encoding="utf-8")
    return Deployment(root, Paths(root / "study.toml", root / "landing", root / "warehouse"))
