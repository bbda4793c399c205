from __future__ import annotations

import pytest

from pipeline.simulate import SimulationOptions, SimulationResult, simulate_study

SMALL = SimulationOptions(seed=11, n_patients=60)


@pytest.fixture(scope="package")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    """A small study with the faulty deliveries of DTS §5."""
    root = tmp_path_factory.mktemp("faulty")
    return simulate_study(root / "landing", root / "study.toml", SMALL)


@pytest.fixture(scope="package")
def clean(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    """The same study without faults."""
    root = tmp_path_factory.mktemp("clean")
    options = SimulationOptions(seed=11, n_patients=60, faults=False)
    return simulate_study(root / "landing", root / "study.toml", options)
