"""The ADaM metadata as data: the datasets, their variables (variables.csv) and parameters (params.csv).

Every writer reads its names, labels, types and keys from here, so the XPT files, the
Dataset-JSON files, adam_metadata.csv and docs/adam.md tell the same story.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources

#: Dataset-JSON dataType of each variable and its SAS type (Num or Char)
DATA_TYPES = {"string": "Char", "integer": "Num", "double": "Num", "datetime": "Num"}


@dataclass(frozen=True)
class Variable:
    dataset: str
    name: str
    label: str
    type: str  # Char or Num (SAS)
    data_type: str  # Dataset-JSON dataType: string, integer, double, datetime
    display_format: str  # SAS format ("" for none)
    key: int | None  # position in the dataset's sort key (Dataset-JSON keySequence)
    origin: str
    derivation: str


@dataclass(frozen=True)
class Dataset:
    name: str
    label: str
    structure: str
    variables: tuple[Variable, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        """The ADaM IG sort key, in order."""
        keyed = sorted((v for v in self.variables if v.key is not None), key=lambda v: v.key or 0)
        return tuple(v.name for v in keyed)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables)


#: the three datasets, in the order they are written (ADSL first: the others refer to it)
DATASET_LABELS = {
    "ADSL": ("Subject-Level Analysis Dataset", "one record per subject"),
    "ADEFF": ("Efficacy Analysis Dataset", "one record per subject per parameter per analysis visit"),
    "ADTTE": ("Time-to-Event Analysis Dataset", "one record per subject per parameter"),
}


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("pipeline.derive.adam").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@cache
def datasets() -> tuple[Dataset, ...]:
    """The ADaM datasets with their variables, from variables.csv."""
    rows = _rows("variables.csv")
    out = []
    for name, (label, structure) in DATASET_LABELS.items():
        variables = tuple(
            Variable(dataset=r["dataset"], name=r["variable"], label=r["label"], type=r["type"],
                     data_type=r["data_type"], display_format=r["display_format"],
                     key=int(r["key"]) if r["key"] else None, origin=r["origin"], derivation=r["derivation"])
            for r in rows if r["dataset"] == name
        )
        out.append(Dataset(name=name, label=label, structure=structure, variables=variables))
    return tuple(out)


def dataset(name: str) -> Dataset:
    return next(d for d in datasets() if d.name == name)


@cache
def params() -> tuple[tuple[str, int, str], ...]:
    """The SAP §3 parameters: (PARAMCD, PARAMN, PARAM), from params.csv."""
    return tuple((r["PARAMCD"], int(r["PARAMN"]), r["PARAM"]) for r in _rows("params.csv"))
