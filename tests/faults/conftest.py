from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.helpers import copy_deployment, deliver_first, deliver_second
from tests.ingest.helpers import Deployment, make_deployment


@pytest.fixture(scope="session")
def _ingested(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """Two ingest runs (five batches, a quarantined row, alerts), built once."""
    dep = make_deployment(tmp_path_factory.mktemp("faults") / "study")
    deliver_first(dep)
    dep.ingest()
    deliver_second(dep)
    dep.ingest()
    return dep


@pytest.fixture
def ingested(_ingested: Deployment, tmp_path: Path) -> Deployment:
    """A private copy of the ingested study."""
    return copy_deployment(_ingested, tmp_path / "study")
