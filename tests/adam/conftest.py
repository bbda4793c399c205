"""A simulated study (faults included: corrections, retractions, withdrawals), ingested, then
exported as XPT and Dataset-JSON; the ADaM tables and the derived tables of the same derivation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from pipeline.config import Paths, Study, load_study


@dataclass
class Exported:
    paths: Paths
    study: Study
    xpt: Path
    json: Path
    tables: dict[str, pa.Table]
    con: duckdb.DuckDBPyConnection  # the derivation the files came from (in memory)


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    from pipeline.derive.adam.build import build_adam
    from pipeline.derive.api import derive_in_memory, export
    from pipeline.ingest.run import ingest
    from pipeline.simulate import SimulationOptions, simulate_study

    root = tmp_path_factory.mktemp("adam")
    paths = Paths(root / "study.toml", root / "landing", root / "warehouse")
    simulate_study(paths.landing, paths.study, SimulationOptions(seed=13, n_patients=60))
    study = load_study(paths.study)
    ingest(paths, study)
    export(paths, study, "xpt", root / "xpt")
    export(paths, study, "dataset-json", root / "json")
    con = derive_in_memory(paths, study)
    tables = build_adam(con, study.study_id)
    return Exported(paths, study, root / "xpt", root / "json", tables, con)
