"""Literal tables for the report tests: a small three-site, two-arm study, built without the pipeline.

The numbers are made up but shaped like the derived tables of interface.md;
site free text carries an injected script and a spreadsheet formula.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import Paths, Site, Study
from pipeline.schema import EVENT_SCHEMA
from pipeline.store.warehouse import ALERT_SCHEMA, BATCH_SCHEMA, QUARANTINE_SCHEMA

DATA = Path(__file__).parent / "data"
DERIVED = ("trajectory", "patient_week", "treatment_flares", "red_flag_occurrences", "red_flag_incidence",
           "recovery_km", "recovery_summary", "dq_site_week")
SCRIPT = "<script>window.__pwned=1</script>"
FORMULA = '=HYPERLINK("http://x","y")'
PHONE = "call +31612345678"
STUDY = Study("SCIATICA-01", ("surgery", "conservative"),
              (Site("NL01", "Leiden"), Site("NL02", "The Hague"), Site("NL03", "Rotterdam")))
START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)  # a Monday
NOW = START + timedelta(weeks=5, days=3)  # NL01, NL02 delivered recently; NL03 is silent
FINGERPRINT = "ab" * 32
FLAGS = ("BLADDER", "BOWEL", "SADDLE", "MOTOR", "BILATERAL", "PARESTHESIA_SPREAD", "OTHER", "ANY")


def _patients() -> pd.DataFrame:
    rows = []
    for i in range(24):
        rows.append({"site_id": STUDY.site_ids[i % 3], "patient_id": f"P{i:03d}", "arm": STUDY.arms[i % 2]})
    return pd.DataFrame(rows)


def sample_tables(seed: int = 7) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    patients = _patients()
    traj, pw, flares, km_times = [], [], [], []
    for p in patients.itertuples(index=False):
        fast = p.arm == "surgery"
        base = float(rng.integers(6, 10))
        extent0 = 6
        recovered_week = None
        for week in range(0, 13):
            drop = week * (0.9 if fast else 0.45)
            value = float(np.clip(base - drop + rng.normal(0, 0.8), 0, 10)) if week else base
            traj.append({"site_id": p.site_id, "patient_id": p.patient_id, "arm": p.arm, "param": "LEGPAIN",
                         "week": week, "value": value, "baseline": base, "change": value - base,
                         "pct_change": 100 * (value - base) / base})
            extent = max(1, extent0 - week // (2 if fast else 4))
            traj.append({"site_id": p.site_id, "patient_id": p.patient_id, "arm": p.arm, "param": "EXTENT",
                         "week": week, "value": float(extent), "baseline": float(extent0),
                         "change": float(extent - extent0), "pct_change": None})
            if week == 0:
                pw.append({"site_id": p.site_id, "patient_id": p.patient_id, "arm": p.arm, "week": 0,
                           "status": "baseline", "centralization": None, "responder": None,
                           "improvement_signs": None})
                continue
            cent = "centralized" if extent < extent0 else ("unchanged" if rng.random() < 0.9 else "peripheralized")
            signs = int(min(5, (extent < extent0) + (value - base <= -2) + rng.integers(0, 2)))
            status = "recovered" if value <= 1 else ("improving" if signs >= 2 else "unchanged")
            if status == "recovered" and recovered_week is None:
                recovered_week = week
            pw.append({"site_id": p.site_id, "patient_id": p.patient_id, "arm": p.arm, "week": week,
                       "status": status, "centralization": cent, "responder": (value - base) / base <= -0.3,
                       "improvement_signs": signs})
        km_times.append((p.arm, float(recovered_week or 12) + 0.3, recovered_week is not None))
        for k, modality in enumerate(("physical_therapy", "dry_needling", "epidural_steroid")):
            if rng.random() < 0.6:
                cls = ("no_flare", "expected_flare", "prolonged_flare", "no_baseline")[int(rng.integers(0, 4))]
                pre = None if cls == "no_baseline" else float(rng.integers(4, 8))
                flares.append({"site_id": p.site_id, "patient_id": p.patient_id,
                               "treatment_event_id": f"T-{p.patient_id}-{k}", "modality": modality,
                               "pre_pain": pre,
                               "peak_pain": None if pre is None else pre + (3.0 if "flare" in cls[3:] else 1.0),
                               "duration_days": {"expected_flare": 4.0, "prolonged_flare": 11.0}.get(cls),
                               "classification": cls})
    km_rows, summary_rows = [], []
    for arm in STUDY.arms:
        times = sorted((t, e) for a, t, e in km_times if a == arm)
        at_risk, surv = len(times), 1.0
        median = None
        for t in sorted({t for t, _ in times}):
            events = sum(1 for tt, e in times if tt == t and e)
            cens = sum(1 for tt, e in times if tt == t and not e)
            surv *= 1 - events / at_risk
            if median is None and surv <= 0.5:
                median = t
            km_rows.append({"arm": arm, "time_weeks": t, "at_risk": at_risk, "events": events, "censored": cens,
                            "survival": surv})
            at_risk -= events + cens
        summary_rows.append({"arm": arm, "n": len(times), "events": sum(e for _, e in times), "median_weeks": median,
                             "recovered_w2": 0.05, "recovered_w4": 0.2, "recovered_w8": 0.5, "recovered_w12": 0.7,
                             "recovered_w26": None, "recovered_w52": None, "logrank_p": 0.0123})
    occurrences = pd.DataFrame([
        {"site_id": "NL01", "patient_id": "P000", "arm": "surgery", "flag": "BLADDER", "event_id": "E-rf1",
         "occurred_at": START + timedelta(days=20), "study_day": 14, "prevalent": False},
        {"site_id": "NL02", "patient_id": "P001", "arm": "conservative", "flag": "MOTOR", "event_id": "E-rf2",
         "occurred_at": START + timedelta(days=3), "study_day": -1, "prevalent": True},
    ])
    incidence = []
    strata = [("overall", "overall")] + [("site", s) for s in STUDY.site_ids] + [("arm", a) for a in STUDY.arms]
    for k, (stype, stratum) in enumerate(strata):
        for j, flag in enumerate(FLAGS):
            cases = (k + j) % 3
            pwk = 60.0 + 10 * k
            incidence.append({
                "stratum_type": stype, "stratum": stratum, "flag": flag, "at_risk": 8, "cases": cases,
                "patient_weeks": pwk, "rate_per_100pw": 100 * cases / pwk, "rate_ci_low": 0.0 if not cases else
                50 * cases / pwk, "rate_ci_high": 100 * (cases + 3) / pwk, "proportion": cases / 8,
                "proportion_ci_low": 0.0, "proportion_ci_high": min(1.0, (cases + 2) / 8)})
    incidence[-1].update(at_risk=0, cases=None, patient_weeks=None, rate_per_100pw=None, rate_ci_low=None,
                         rate_ci_high=None, proportion=None, proportion_ci_low=None, proportion_ci_high=None)
    dq, batches, quarantine = [], [], []
    for s, site in enumerate(STUDY.site_ids):
        weeks = 6 if site != "NL03" else 3  # NL03 falls silent
        for w in range(weeks):
            at = START + timedelta(weeks=w, hours=s)
            received = 40 + 5 * s
            rejected = 2 + (w == weeks - 1 and site == "NL02") * 20  # NL02's last week jumps
            iso = at.isocalendar()
            dq.append({"site_id": site, "iso_week": f"{iso.year}-W{iso.week:02d}", "received": received,
                       "accepted": received - rejected, "rejected": rejected, "warnings": w % 3, "duplicates": 1,
                       "late_entries": w % 2, "lag_p50_hours": 12.0 + s, "lag_p90_hours": 40.0 + 8 * w,
                       "diary_completeness": 0.95 - 0.05 * w * (s == 2)})
            batch_id = f"b-{site}-{w}"
            batches.append({"batch_id": batch_id, "site_id": site, "source_file": f"{site}/week{w}.csv",
                            "source_sha256": f"{s}{w}" * 32, "status": "ingested", "file_rules": [],
                            "received": received, "accepted": received - rejected, "rejected": rejected,
                            "duplicates": 1, "warnings": w % 3, "unknown_columns": [], "ingested_at": at})
            for r in range(rejected):
                rule = ["bad_enum"] if r % 2 else ["out_of_range"]
                if site == "NL02" and w == weeks - 1:
                    rule = ["naive_timestamp"]
                comment = SCRIPT if r == 0 else (FORMULA if r == 1 else "ok")
                messages = [f"{x}: {comment}" for x in rule]
                if (site, w, r) == ("NL01", 1, 1):  # the ingest keeps such comments redacted; reports must too
                    rule, comment, messages = ["phi_in_comment"], PHONE, ["phi_in_comment: comment: phone number"]
                quarantine.append({"batch_id": batch_id, "site_id": site, "source_file": f"{site}/week{w}.csv",
                                   "source_sha256": f"{s}{w}" * 32, "source_row": r + 2, "event_id": f"E{s}{w}{r}",
                                   "rules": rule, "messages": messages,
                                   "raw": json.dumps({"event_id": f"E{s}{w}{r}", "comment": comment}),
                                   "ingested_at": at})
    alerts = pd.DataFrame([
        {"alert_id": "a1", "site_id": "NL01", "patient_id": "P000", "event_id": "E-rf1", "flag": "BLADDER",
         "occurred_at": START + timedelta(days=20), "raised_at": START + timedelta(days=21), "validated": True,
         "source": "ingest", "batch_id": "b-NL01-2", "message": "bladder dysfunction reported"},
        {"alert_id": "a2", "site_id": "NL02", "patient_id": "P001", "event_id": "E-x", "flag": "SADDLE",
         "occurred_at": START + timedelta(days=30), "raised_at": START + timedelta(days=31), "validated": False,
         "source": "ingest", "batch_id": "b-NL02-4", "message": f"rejected record; comment: {SCRIPT}"},
    ])
    return {
        "trajectory": pd.DataFrame(traj), "patient_week": pd.DataFrame(pw), "treatment_flares": pd.DataFrame(flares),
        "red_flag_occurrences": occurrences, "red_flag_incidence": pd.DataFrame(incidence),
        "recovery_km": pd.DataFrame(km_rows), "recovery_summary": pd.DataFrame(summary_rows),
        "dq_site_week": pd.DataFrame(dq), "alerts": alerts, "quarantine": pd.DataFrame(quarantine),
        "batches": pd.DataFrame(batches),
    }


def write_log(frame: pd.DataFrame, schema: pa.Schema, path: Path) -> None:
    """Rows as the store writes them (columns the frame lacks are null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(frame.to_dict("records"), schema=schema), path)


def make_warehouse(root: Path, tables: dict[str, pd.DataFrame], validations: bool = True) -> Paths:
    """A warehouse as ingest and derive leave it: Parquet logs, trial.duckdb with the derived tables."""
    paths = Paths(root / "study.toml", root / "landing", root / "warehouse")
    paths.warehouse.mkdir(parents=True)
    con = duckdb.connect(str(paths.db_path))
    for name in DERIVED:
        frame = tables[name]  # noqa: F841 - read by DuckDB's replacement scan
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
    con.close()
    write_log(tables["alerts"], ALERT_SCHEMA, paths.alerts_dir / "ingest-1.parquet")
    write_log(tables["batches"], BATCH_SCHEMA, paths.batches_dir / "all.parquet")
    for site, part in tables["quarantine"].groupby("site_id"):
        write_log(part, QUARANTINE_SCHEMA, paths.quarantine_dir / f"site={site}" / "q.parquet")
    events = [{"event_id": f"E{i}", "event_type": "symptom_report", "site_id": "NL01", "patient_id": "P000",
               "batch_id": f"b-NL01-{i}", "ingested_at": START + timedelta(weeks=i), "content_hash": f"h{i}"}
              for i in range(5)]
    (paths.events_dir / "site=NL01").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(events, schema=EVENT_SCHEMA), paths.events_dir / "site=NL01" / "e.parquet")
    if validations:
        shutil.copytree(DATA / "validations", paths.validations_dir)
    return paths


class _Tables(HTMLParser):
    """Rows of <table data-table=KEY> (header row first), cell text unescaped, as the reader sees it."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key, self.depth, self.rows = key, 0, []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and (self.depth or dict(attrs).get("data-table") == self.key):
            self.depth += 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.depth:
            self.depth -= 1
        elif self.depth and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def table_rows(html: str, key: str) -> list[dict[str, str]]:
    """The rows of the table `data-table=key` as dicts keyed by its header."""
    parser = _Tables(key)
    parser.feed(html)
    assert parser.rows, f"no table {key!r} in the page"
    header, *body = parser.rows
    return [dict(zip(header, row, strict=True)) for row in body]


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "action", "srcset", "poster")]


def assert_self_contained(html: str, allowed_files: tuple[str, ...] = ()) -> None:
    parser = _Refs()
    parser.feed(html)
    assert not {"script", "link", "iframe", "object", "embed", "img"} & set(parser.tags)
    for ref in parser.refs:
        assert ref.startswith(("#", "data:")) or ref in allowed_files, ref
    assert "@import" not in html
    assert not re.search(r"url\((?!#)", html)
