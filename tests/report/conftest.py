"""Fixtures of the report tests (tables and builders live in helpers.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.config import Paths
from pipeline.report.api import write_reports
from tests.report.helpers import STUDY, make_warehouse, sample_tables


@dataclass(frozen=True)
class Written:
    """A warehouse as ingest and derive leave it, and what `write_reports` wrote from it."""

    paths: Paths
    files: list[Path]

    def file(self, name: str) -> Path:
        return next(p for p in self.files if p.name == name)


@pytest.fixture(scope="session")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    paths = make_warehouse(tmp_path_factory.mktemp("report"), sample_tables())
    return Written(paths, write_reports(paths, STUDY))


@pytest.fixture
def artifacts() -> Callable[[Path], Path]:
    """Keep a file as a test artefact: $TRIALPIPE_ARTIFACTS, else tests/artifacts/ (gitignored)."""
    target = Path(os.environ.get("TRIALPIPE_ARTIFACTS") or Path(__file__).resolve().parents[1] / "artifacts")

    def keep(path: Path) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(path, target / path.name))

    return keep
