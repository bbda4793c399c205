"""Great Expectations' SQL execution engine on the pipeline's own DuckDB: the two adaptations it needs.

GX 1.x (checked with 1.24, duckdb-engine 0.17, SQLAlchemy 2.1) runs its SQL engine on DuckDB once

1. each cursor is a real DuckDB cursor. duckdb-engine hands SQLAlchemy the connection itself as its
   cursor, so a result read after GX closed its connection is gone (`IndexError` in
   `resolve_metric_bundle`). `creator()` wraps a cursor of the pipeline's connection whose `cursor()`
   returns a fresh `connection.cursor()`; GX's engine then shares the pipeline's database instance
   (DuckDB refuses a second instance of an open file with another configuration).
2. GX knows a regex for the dialect. GX's pandas engine *searches* (`str.contains`); the DuckDB form
   is `regexp_matches`, a search too (not `regexp_full_match`; what `~` means has varied between
   versions). Python's `\\Z` (end of text) is RE2's `\\z`; `re2_pattern` translates it, nothing else
   differs in the patterns the suites use (ASCII classes, `\\xHH` escapes and literal characters only;
   tests/ingest/test_gx_duckdb.py and the differential test check both engines give the same verdicts).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

import duckdb
import sqlalchemy as sa
from duckdb_engine import ConnectionWrapper, CursorWrapper
from sqlalchemy.pool import NullPool

DIALECT = "duckdb"


class SharedConnection(ConnectionWrapper):
    """A DBAPI connection over a cursor of the pipeline's DuckDB; every `cursor()` is a real cursor."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        super().__init__(con)
        self._con = con

    def cursor(self) -> CursorWrapper:
        return CursorWrapper(self._con.cursor(), self)

    def close(self) -> None:
        # GX reads some results after closing its connection: the cursors stay usable until collected
        # (they are cursors of the pipeline's connection, which keeps the database open)
        self.closed = True


def engine_kwargs(current: Callable[[], duckdb.DuckDBPyConnection]) -> dict[str, Any]:
    """`create_engine` kwargs for GX's SQL datasource: connect to whatever DuckDB `current()` gives now."""
    return {"creator": lambda: SharedConnection(current().cursor()), "poolclass": NullPool}


_PY_END = re.compile(r"(?<!\\)((?:\\\\)*)\\Z")


def re2_pattern(pattern: str) -> str:
    r"""The RE2 (DuckDB) spelling of a Python pattern: `\Z` (end of text) is RE2's `\z`."""
    return _PY_END.sub(r"\1\\z", pattern)


def _is_duckdb(dialect: Any) -> bool:
    inner = getattr(dialect, "dialect", None)
    return getattr(dialect, "name", None) == DIALECT or getattr(inner, "name", None) == DIALECT


def regex_expression(column: Any, regex: str, positive: bool = True) -> Any:
    """A regex *search* in DuckDB, as GX's pandas engine applies it."""
    found = sa.func.regexp_matches(column, sa.literal(re2_pattern(regex)))
    return found if positive else sa.not_(found)


_MODULES = (
    "great_expectations.expectations.metrics.column_map_metrics.column_values_match_regex",
    "great_expectations.expectations.metrics.column_map_metrics.column_values_not_match_regex",
    "great_expectations.expectations.metrics.column_map_metrics.column_values_match_regex_list",
    "great_expectations.expectations.metrics.column_map_metrics.column_values_not_match_regex_list",
    "great_expectations.expectations.metrics.column_aggregate_metrics.column_values_match_regex_values",
    "great_expectations.expectations.metrics.column_aggregate_metrics.column_values_not_match_regex_values",
)


def install() -> None:
    """Teach GX's regex metrics the DuckDB dialect (idempotent; other dialects are left as GX has them)."""
    import importlib

    for name in _MODULES:
        module: ModuleType = importlib.import_module(name)
        original = module.get_dialect_regex_expression
        if getattr(original, "_duckdb_aware", False):
            continue

        def aware(column: Any, regex: str, dialect: Any, positive: bool = True,
                  _original: Callable[..., Any] = original) -> Any:
            if _is_duckdb(dialect):
                return regex_expression(column, regex, positive)
            return _original(column, regex, dialect, positive)

        aware._duckdb_aware = True  # type: ignore[attr-defined]
        module.get_dialect_regex_expression = aware  # type: ignore[attr-defined]


def index_rows_sql(query: str) -> str:
    """GX's `unexpected_index_query` as a subquery of its first column (`_row`), run through the DBAPI.

    GX writes literal values into it; SQLAlchemy's `text()` would read `:name` inside a pattern as a
    bind parameter, so it is never passed through SQLAlchemy.
    """
    return f"SELECT DISTINCT #1 AS _row FROM ({query.strip().rstrip(';')})"
