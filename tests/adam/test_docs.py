"""docs/adam.md stays true: it documents every dataset, variable and parameter of the metadata."""

from __future__ import annotations

from pathlib import Path

from pipeline.derive.adam.metadata import datasets, params

DOC = Path(__file__).resolve().parents[2] / "docs" / "adam.md"


def test_every_variable_and_parameter_is_documented_with_its_label() -> None:
    text = DOC.read_text(encoding="utf-8")
    for ds in datasets():
        section = text.split(f"### {ds.name}\n", 1)[1].split("\n### ", 1)[0]
        for v in ds.variables:
            assert f"| `{v.name}` | {v.label} | {v.type} |" in section, (ds.name, v.name)
        assert f"| `{ds.name}` | {ds.label}" in text
    for code, n, label in params():
        assert f"| `{code}` | {n} | {label} |" in text
