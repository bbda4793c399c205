"""Fixtures for derivations over a real warehouse on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Paths


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "study.toml", tmp_path / "landing", tmp_path / "warehouse")
