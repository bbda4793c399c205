"""What a simulated study looks like: the options of `simulate_study`."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.simulate.clock import parse_instant
from pipeline.simulate.writers import FORMATS

#: Names of the first simulated sites (NL01, NL02, ...); further sites are named "Site NN".
SITE_NAMES = ("Leiden", "The Hague", "Rotterdam", "Amsterdam", "Utrecht", "Groningen", "Nijmegen", "Maastricht")


@dataclass(frozen=True)
class SimulationOptions:
    seed: int = 2007
    n_patients: int = 120
    n_sites: int = 3  # sites NL01, NL02, NL03 ... (registered in the written study.toml)
    weeks: int = 52  # follow-up length
    diary_per_week: float = 3.0  # mean symptom_reports per patient-week
    faults: bool = True  # include the faulty deliveries of DTS §5
    formats: tuple[str, ...] = FORMATS
    files_per_site: int = 4  # deliveries per site (split by time)
    reference_time: str = "2026-06-01T00:00:00+00:00"  # all occurred/recorded times lie before this

    def __post_init__(self) -> None:
        if self.n_patients < 1 or self.n_sites < 1 or self.files_per_site < 1:
            raise ValueError("n_patients, n_sites and files_per_site must be at least 1")
        if self.n_sites > 99:
            raise ValueError("at most 99 sites (NL01 ... NL99)")
        if self.weeks < 1:
            raise ValueError("weeks must be at least 1")
        if not 0 < self.diary_per_week <= 7:
            raise ValueError("diary_per_week must be in (0, 7]")
        if not self.formats or any(f not in FORMATS for f in self.formats):
            raise ValueError(f"formats must be a non-empty selection of {FORMATS}")
        parse_instant(self.reference_time)  # raises on a timestamp without offset

    @property
    def reference_s(self) -> int:
        """The reference time as seconds since the epoch."""
        return parse_instant(self.reference_time)

    @property
    def site_ids(self) -> tuple[str, ...]:
        return tuple(f"NL{i + 1:02d}" for i in range(self.n_sites))

    @property
    def site_names(self) -> tuple[str, ...]:
        return tuple(SITE_NAMES[i] if i < len(SITE_NAMES) else f"Site {i + 1:02d}" for i in range(self.n_sites))


#: The options of `simulate_study` when none are given.
DEFAULT_OPTIONS = SimulationOptions()
