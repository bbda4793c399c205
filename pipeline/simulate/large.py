"""One big CSV delivery (benchmarks: ~2 GB), generated and written in chunks of patients.

Memory stays bounded by one chunk. The file is a single site's (the first
site's) clean events, patients numbered on across chunks; rows are sorted by
delivery instant within each chunk, and a chunk holds whole patients, so every
correction and retraction still comes after its target. The file is cut at a
row boundary so it never exceeds `target_bytes`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from pipeline.simulate.deliveries import clean_columns
from pipeline.simulate.events import build_events
from pipeline.simulate.options import DEFAULT_OPTIONS, SimulationOptions
from pipeline.simulate.patients import draw_cohort
from pipeline.simulate.writers import csv_bytes

CHUNK_PATIENTS = 2_000


@dataclass(frozen=True)
class LargeCsv:
    path: Path
    n_bytes: int
    n_rows: int
    n_patients: int


def write_large_csv(path: Path, options: SimulationOptions = DEFAULT_OPTIONS, target_bytes: int = 2_000_000_000,
                    chunk_patients: int = CHUNK_PATIENTS) -> LargeCsv:
    """Write one site's events as a single CSV of at most (and about) `target_bytes` bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    one_site = replace(options, n_sites=1, faults=False)
    written = rows = patients = 0
    chunk = 0
    with open(path, "wb") as out:
        while True:
            rng = np.random.default_rng([options.seed, 2, chunk])
            cohort = draw_cohort(rng, chunk_patients, one_site, 1, first_number=patients + 1)
            table = clean_columns(build_events(cohort, one_site, one_site.site_ids, rng).table)
            data = csv_bytes(table, header=chunk == 0)
            last = len(data) >= target_bytes - written
            if last:  # keep the rows that fit
                data = data[: data.rfind(b"\n", 0, target_bytes - written) + 1]
                table = table.slice(0, max(0, data.count(b"\n") - (chunk == 0)))
            out.write(data)
            written += len(data)
            rows += table.num_rows
            patients += len(pc.unique(table.column("patient_id")))
            chunk += 1
            if last:
                break
    return LargeCsv(path, written, rows, patients)
