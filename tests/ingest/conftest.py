from __future__ import annotations

from pathlib import Path

import pytest

from tests.ingest.helpers import Deployment, make_deployment


@pytest.fixture
def dep(tmp_path: Path) -> Deployment:
    return make_deployment(tmp_path / "study")
