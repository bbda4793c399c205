"""A synthetic multi-site sciatica trial: a study configuration and a landing zone of site deliveries.

    simulate_study(landing, study_path, SimulationOptions(seed=2007, n_patients=120))

draws a cohort with a latent recovery course (patients.py) calibrated to Peul et
al. (NEJM 2007), schedules its events (schedule.py, events.py), cuts them into
site delivery files (deliveries.py), adds the faulty deliveries of DTS §5
(faults.py) and writes everything in the five DTS formats (writers.py).
docs/simulator.md describes the model for statisticians.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.simulate.deliveries import Written, plan_deliveries, write_delivery
from pipeline.simulate.events import build_events
from pipeline.simulate.faults import FaultRecord, inject_faults
from pipeline.simulate.large import write_large_csv
from pipeline.simulate.options import DEFAULT_OPTIONS, SimulationOptions
from pipeline.simulate.patients import ARMS, draw_cohort
from pipeline.simulate.writers import FORMATS, rows_to_table, write_events, write_table

__all__ = [
    "ARMS", "FORMATS", "FaultRecord", "SimulationOptions", "SimulationResult", "rows_to_table", "simulate_study",
    "study_toml", "write_events", "write_large_csv", "write_table",
]

STUDY_ID = "SCIATICA-01"


@dataclass(frozen=True)
class SimulationResult:
    """What `simulate_study` wrote.

    `n_events` counts the clean events (each once); `n_fault_rows` the faulty rows slipped
    into the deliveries; `fault_counts` the injected faults by DTS §5 rule name (rows, or
    files for the file-level rules); `faults` one record per injected fault;
    `warning_counts` the warnings the clean data itself will raise (late entries);
    `unvalidated_red_flags` the rejected rows that still carry a red-flag signal.
    """

    study_path: Path
    landing: Path
    sites: tuple[str, ...]
    files: list[Path]
    n_patients: int
    n_events: int
    n_fault_rows: int = 0
    fault_counts: dict[str, int] = field(default_factory=dict)
    faults: list[FaultRecord] = field(default_factory=list)
    warning_counts: dict[str, int] = field(default_factory=dict)
    unvalidated_red_flags: int = 0


def study_toml(options: SimulationOptions) -> str:
    """The DTS §1 study configuration of a simulated study."""
    lines = [f'study_id = "{STUDY_ID}"', "arms = [" + ", ".join(f'"{a}"' for a in ARMS) + "]"]
    for site_id, name in zip(options.site_ids, options.site_names, strict=True):
        lines += ["", "[[sites]]", f'id = "{site_id}"', f'name = "{name}"']
    return "\n".join(lines) + "\n"


def simulate_study(landing: Path, study_path: Path, options: SimulationOptions = DEFAULT_OPTIONS) -> SimulationResult:
    """Write the study configuration and a landing zone of site deliveries; deterministic for a seed."""
    landing, study_path = Path(landing), Path(study_path)
    rng = np.random.default_rng(options.seed)  # faults draw from their own stream: same clean data either way
    cohort = draw_cohort(rng, options.n_patients, options, options.n_sites)
    events = build_events(cohort, options, options.site_ids, rng)
    deliveries = plan_deliveries(events.table, options)
    injected = inject_faults(deliveries, options, np.random.default_rng([options.seed, 1])) if options.faults \
        else None
    study_path.parent.mkdir(parents=True, exist_ok=True)
    study_path.write_text(study_toml(options), encoding="utf-8")
    written: list[Written] = [write_delivery(d, landing) for d in deliveries]
    files = [w.path for w in written]
    records: list[FaultRecord] = [FaultRecord(rule, w.path, event_id, row)
                                  for w in written for rule, event_id, row in w.fault_rows]
    if injected is not None:
        records += injected.write_files(landing)
        files += [r.path for r in records if r.row is None and r.path not in files]
    counts = Counter(r.rule for r in records)
    return SimulationResult(
        study_path=study_path, landing=landing, sites=options.site_ids, files=files,
        n_patients=options.n_patients, n_events=events.table.num_rows,
        n_fault_rows=sum(len(w.fault_rows) for w in written),
        fault_counts=dict(sorted(counts.items())), faults=records,
        warning_counts={"late_entry": events.late_entries},
        unvalidated_red_flags=injected.unvalidated_red_flags if injected is not None else 0,
    )
