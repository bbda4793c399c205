"""Fixtures of the notification tests: no mail settings from the caller's environment, a real SMTP sink,
and a warehouse with three ingest alerts (one UNVALIDATED, from a rejected row), copied by each test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.config import Paths
from pipeline.notify import ENV_VARS
from tests.ingest.helpers import Deployment, enrollment, event, make_deployment, symptom
from tests.smtp_sink import SmtpSink, smtp_sink


@pytest.fixture(autouse=True)
def no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with smtp_sink() as s:
        yield s


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dep = make_deployment(tmp_path_factory.mktemp("notify") / "study")
    dep.deliver("NL01", "a.csv", [enrollment("E1"), event("F1", "red_flag", flag="saddle_anesthesia"),
                                  symptom("E2", leg_pain_nrs=14, bladder_dysfunction=True)])
    dep.deliver("NL02", "b.csv", [enrollment("E9", patient="P9", site="NL02"),
                                  symptom("E10", patient="P9", site="NL02", bowel_dysfunction=True)])
    assert len(dep.ingest().alerts) == 3
    return dep.root


@pytest.fixture
def dep(delivered: Path, tmp_path: Path) -> Deployment:
    """A copy of `delivered` (a module may deliver its own), its study.toml as it was."""
    root = tmp_path / "study"
    shutil.copytree(delivered, root)
    return Deployment(root, Paths(root / "study.toml", root / "landing", root / "warehouse"))
