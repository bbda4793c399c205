"""The adapter that runs GX's SQL engine on the pipeline's DuckDB: cursors, shared instance, regex semantics."""

from __future__ import annotations

import re

import duckdb
import pytest
import sqlalchemy as sa

from pipeline.ingest import gx_duckdb
from pipeline.ingest.suites import SUITE_NAMES, load_suite_dict

TEXTS = [
    "5", "5\n", "\n5", "a5", "+12", "-0", "12a", "", " ", "true", "TRUE", "falſe", "1", "０", "٣",
    "2026-01-05T09:00:00Z", "2026-01-05T09:00:00Z\n", "x2026-01-05T09:00:00+01:00", "2026-01-05 09:00",
    "2026-01-05T09:00:00+25:00", "P1", "P-1_x", "P 1", "a" * 65, "jan@müller.de", "mail me at a@b.co please",
    "pain@night", "ёжик@пример.рф", "用户@例子。中国", "+31 6 1234 5678", "(555) 123-4567", "555-123-4567",
    "555.123.4567", "1234567890", "123-45-6789", "٠١٢-٣٤٥-٦٧٨٩", "line\nbreak 123-45-6789", "tab\there",
]


def _patterns() -> list[str]:
    found: set[str] = set()
    for name in SUITE_NAMES:
        for e in load_suite_dict(name)["expectations"]:
            kw = e["kwargs"]
            found.update([kw["regex"]] if "regex" in kw else kw.get("regex_list") or [])
    return sorted(found)


def test_python_end_of_text_is_spelt_as_re2s() -> None:
    assert gx_duckdb.re2_pattern(r"\A(?:[0-9]+)\Z") == r"\A(?:[0-9]+)\z"
    assert gx_duckdb.re2_pattern(r"a\\Z") == r"a\\Z", "an escaped backslash before Z is no anchor"
    assert gx_duckdb.re2_pattern(r"a\\\Z") == r"a\\\z"


@pytest.mark.parametrize("pattern", _patterns())
def test_every_suite_regex_searches_alike_in_python_and_in_duckdb(pattern: str) -> None:
    """GX's pandas engine searches with Python's re; the DuckDB form must select exactly the same texts."""
    con = duckdb.connect()
    duck = [bool(r[0]) for r in con.execute("SELECT regexp_matches(t, ?) FROM unnest(?::VARCHAR[]) u(t)",
                                            [gx_duckdb.re2_pattern(pattern), TEXTS]).fetchall()]
    # unnest keeps the order of the list
    assert duck == [re.search(pattern, t) is not None for t in TEXTS]


def test_the_regex_is_a_search_not_duckdbs_full_match() -> None:
    con = duckdb.connect()
    expr = gx_duckdb.regex_expression(sa.column("t"), "[0-9]{3}")
    sql = str(expr.compile(compile_kwargs={"literal_binds": True}))
    assert con.execute(f"SELECT {sql} FROM (SELECT 'call 555 now' AS t)").fetchall() == [(True,)]
    full = gx_duckdb.regex_expression(sa.column("t"), r"\A[0-9]{3}\Z")
    sql = str(full.compile(compile_kwargs={"literal_binds": True}))
    assert con.execute(f"SELECT {sql} FROM (SELECT 'call 555 now' AS t)").fetchall() == [(False,)]


def test_gx_cursors_share_the_pipelines_database_and_outlive_their_connection() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT range AS x FROM range(5)")
    engine = sa.create_engine("duckdb:///:memory:", **gx_duckdb.engine_kwargs(lambda: con))
    with engine.connect() as c:
        result = c.execute(sa.text("SELECT count(*) FROM t"))
    assert result.fetchall() == [(5,)], "a result read after GX closed its connection"
    with engine.connect() as c:
        a = c.execute(sa.text("SELECT x FROM t ORDER BY x"))
        b = c.execute(sa.text("SELECT max(x) FROM t"))
        assert b.fetchall() == [(4,)] and len(a.fetchall()) == 5, "each statement has a cursor of its own"


def test_index_rows_sql_selects_the_first_column_of_gx_s_query() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE v AS SELECT range AS _row, range % 2 AS n FROM range(6)")
    q = "SELECT _row, n, _row \nFROM v \nWHERE n = 1;"
    assert sorted(r[0] for r in con.execute(gx_duckdb.index_rows_sql(q)).fetchall()) == [1, 3, 5]
    q = "SELECT _row, t FROM (SELECT _row, 'a:xn' AS t FROM v) WHERE t LIKE '%:xn';"  # `:xn` is no bind parameter
    assert len(con.execute(gx_duckdb.index_rows_sql(q)).fetchall()) == 6
