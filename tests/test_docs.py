"""Docs stay true: every CLI command is documented; the README's commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_every_cli_command_is_in_the_readme_and_its_help() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, command in main.commands.items():
        assert f"trialpipe {name}" in readme, f"README does not document `trialpipe {name}`"
        assert command.help, f"`trialpipe {name}` has no help text"


def test_readme_starts_with_the_two_make_targets_and_they_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    targets = re.findall(r"^make (\w+)", first_block, flags=re.M)
    assert targets == ["demo", "test"]
    makefile = (ROOT / "Makefile").read_text()
    for t in [*targets, "lint", "bench"]:
        assert re.search(rf"^{t}:", makefile, flags=re.M), f"Makefile has no target {t}"


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_doc_linked_from_the_readme_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    for link in re.findall(r"\]\(((?:docs|bench)/[^)]+)\)", readme):
        assert (ROOT / link).exists(), f"README links to missing {link}"
