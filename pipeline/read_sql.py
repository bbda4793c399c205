"""Small helpers for building SQL text safely."""

from __future__ import annotations

from importlib import resources


def sql_literal(text: str) -> str:
    """A SQL string literal (single quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def load_sql(package: str, name: str) -> str:
    """The text of a .sql file shipped inside a package."""
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")
