"""Run the checked-in Great Expectations suites on the staged rows, in DuckDB, and read the verdict per row.

GX's SQL execution engine validates each suite on a DuckDB view of the staged rows (no rows leave
DuckDB); for every failed expectation, GX's `unexpected_index_query` (with `_row` as the index column)
selects exactly the records that broke it. Results are SUMMARY: counts plus a few example rows.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

os.environ.setdefault("TQDM_DISABLE", "1")
logging.getLogger("great_expectations").setLevel(logging.WARNING)

import duckdb  # noqa: E402
import great_expectations as gx  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402

from pipeline.ingest import gx_duckdb  # noqa: E402
from pipeline.ingest.suites import SUITE_NAMES, TYPE_SUITES, load_suite_dict  # noqa: E402
from pipeline.rules import rule as rule_info  # noqa: E402

KEEP_UNEXPECTED = 20  # rows listed per expectation in the stored results (counts stay complete)


@dataclass
class Finding:
    rule: str
    field: str
    message: str


@dataclass
class ChunkVerdict:
    findings: dict[int, list[Finding]] = field(default_factory=lambda: defaultdict(list))
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # suite -> validation result JSON


def _quiet(ctx: Any) -> None:
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:
        pass


Engine = Literal["duckdb", "pandas"]
_SOURCE = "gx_source"  # the table a frame handed to `check` is staged into


def expectation_columns(exp: dict[str, Any]) -> list[str]:
    kw = exp["kwargs"]
    return [kw[k] for k in ("column", "column_A", "column_B") if k in kw] + list(kw.get("column_list") or [])


def needed_columns(expectations: list[dict[str, Any]], available: list[str]) -> list[str]:
    """The columns a set of expectations reads (plus `_row`, the index GX reports).

    GX's pandas engine filters the whole batch frame once per expectation, so handing it only the
    columns the suite looks at makes each run several times cheaper; no expectation sees another column.
    """
    names = {"_row"}
    for exp in expectations:
        names.update(expectation_columns(exp))
    return [c for c in available if c in names]


def is_vacuous(exp: dict[str, Any], filled: set[str]) -> bool:
    """True when an expectation cannot fail on this batch, so running it changes no verdict.

    Value checks ignore empty cells, so a check of a column that is empty in every row passes.
    Only `not_be_null` checks must run on empty columns.
    """
    if exp["type"] == "expect_column_values_to_not_be_null":
        return False
    return any(c not in filled for c in expectation_columns(exp))


def _view_sql(source: str, suite: str, derived: dict[str, str]) -> str:
    """The rows a suite validates: a per-type suite sees only its type's rows; plus its derived columns."""
    extra = "".join(f", {sql} AS {name}" for name, sql in derived.items())
    where = f" WHERE event_type = '{suite}'" if suite in TYPE_SUITES else ""
    return f"SELECT *{extra} FROM {source}{where}"


class RowChecker:
    """One GX context for a process; validates staged rows against the checked-in suites.

    The rows stay in DuckDB: GX's SQL execution engine (pipeline/ingest/gx_duckdb.py) runs each suite
    on a view of them, and the failing rows of each failed expectation are those GX's own
    `unexpected_index_query` selects. The pandas engine validates the same views' rows for the
    differential test.
    """

    def __init__(self, suite_names: tuple[str, ...] = SUITE_NAMES) -> None:
        gx_duckdb.install()
        self.ctx = gx.get_context(mode="ephemeral")
        _quiet(self.ctx)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._idle = duckdb.connect()  # what GX connects to between validations (it tests its datasource)
        self.sql = self.ctx.data_sources.add_sql("staged_rows", connection_string="duckdb:///:memory:",
                                                 kwargs=gx_duckdb.engine_kwargs(self._current))  # type: ignore[call-arg]
        self.pandas = self.ctx.data_sources.add_pandas("staged_frames")
        self.frame_batch = self.pandas.add_dataframe_asset("rows").add_batch_definition_whole_dataframe("whole")
        self.suites = {name: load_suite_dict(name) for name in suite_names}
        self.tables: dict[str, Any] = {}

    def _current(self) -> duckdb.DuckDBPyConnection:
        return self._idle if self._con is None else self._con

    def _table_batch(self, view: str) -> Any:
        if view not in self.tables:
            self.tables[view] = self.sql.add_table_asset(view, table_name=view).add_batch_definition_whole_table("all")
        return self.tables[view].get_batch()

    def check(self, frame: pd.DataFrame, parameters: dict[str, Any],
              suites: tuple[str, ...] = SUITE_NAMES, engine: Engine = "duckdb") -> ChunkVerdict:
        """Validate the rows of a frame (keyed by `_row`): staged into a DuckDB of their own first."""
        con = duckdb.connect()
        try:
            con.register("frame_in", frame)
            cols = ", ".join(f"CAST({c} AS VARCHAR) AS {c}" if frame[c].dtype == object else c
                             for c in frame.columns)
            con.execute(f"CREATE TABLE {_SOURCE} AS SELECT {cols} FROM frame_in")
            con.unregister("frame_in")
            return self.check_table(con, _SOURCE, parameters, suites, engine)
        finally:
            con.close()

    def check_table(self, con: duckdb.DuckDBPyConnection, source: str, parameters: dict[str, Any],
                    suites: tuple[str, ...] = SUITE_NAMES, engine: Engine = "duckdb") -> ChunkVerdict:
        """Validate every row of table `source` in `con` (its `_row` is the key of the findings)."""
        self._con = con
        try:
            return self._check(con, source, parameters, suites, engine)
        finally:
            self.release()
            self._con = None

    def _engine_caches(self) -> list[dict[Any, Any]]:
        """The engines' batch and metric caches (GX keeps both for the engine's life)."""
        caches: list[Any] = []
        for ds in (self.pandas, self.sql):
            engine = ds.get_execution_engine()
            caches += [getattr(engine.batch_manager, "_batch_data_cache", None), getattr(engine, "_metric_cache", None)]
        return [c for c in caches if isinstance(c, dict)]

    def release(self) -> None:
        """Drop the frames and metrics GX keeps after a validation.

        Kept, they grow without bound (pandas) and would answer the next batch of a table with the same
        name from the last one (SQL). Verdicts are already read when this runs.
        """
        for cache in self._engine_caches():
            cache.clear()

    def cached_items(self) -> int:
        """Frames and metrics the GX engines still hold (0 after each check)."""
        return sum(len(cache) for cache in self._engine_caches())

    def _check(self, con: duckdb.DuckDBPyConnection, source: str, parameters: dict[str, Any],
               suites: tuple[str, ...], engine: Engine) -> ChunkVerdict:
        verdict = ChunkVerdict()
        for name in suites:
            d = self.suites[name]
            view = f"gx_{name}"
            con.execute(f"CREATE OR REPLACE VIEW {view} AS "
                        f"{_view_sql(source, name, (d.get('meta') or {}).get('derived_columns') or {})}")
            columns = [r[0] for r in con.execute(f"DESCRIBE {view}").fetchall()]
            read = sorted({c for e in d["expectations"] for c in expectation_columns(e)} & set(columns))
            counts = con.execute(f"SELECT count(*), {', '.join(f'count({c})' for c in read)} FROM {view}").fetchall()[0]
            if counts[0] == 0 and name in TYPE_SUITES:
                continue  # no row of this type
            filled = {c for c, n in zip(read, counts[1:], strict=True) if n}
            active = [e for e in d["expectations"] if not is_vacuous(e, filled)]
            suite = gx.ExpectationSuite(name=d["name"], expectations=active, meta=d.get("meta", {}))
            if engine == "duckdb":
                result = self._validate_in_duckdb(con, view, suite, parameters, verdict)
            else:
                frame = con.execute(f"SELECT {', '.join(needed_columns(active, columns))} FROM {view}").df()
                result = self.frame_batch.get_batch(batch_parameters={"dataframe": frame}).validate(
                    suite, expectation_parameters=parameters,
                    result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["_row"]})
                for r in result.results:
                    _raise_if_errored(r)
                    if not r.success:
                        self._read_failures(con, view, r, engine, verdict)
            out = _trim(result.to_json_dict())
            out.setdefault("meta", {})["skipped_vacuous_expectations"] = len(d["expectations"]) - len(active)
            verdict.results[name] = out
        return verdict

    def _validate_in_duckdb(self, con: duckdb.DuckDBPyConnection, view: str, suite: Any,
                            parameters: dict[str, Any], verdict: ChunkVerdict) -> Any:
        """Validate a suite in two passes: every expectation's counts, then the failed ones' rows.

        The first pass asks GX for counts only (BASIC without example rows: no index list, and a value
        list of none, so a passing expectation costs GX almost nothing beyond the bundled counts); the
        second runs just the expectations that failed, as SUMMARY with their example rows and the
        `unexpected_index_query` that names every failing row. The stored result is the first one with
        each failed expectation's result taken from the second: the same SUMMARY result a single pass
        gives (a passing expectation's empty example lists are added as SUMMARY has them).
        """
        batch = self._table_batch(view)
        first = batch.validate(suite, expectation_parameters=parameters,
                               result_format={"result_format": "BASIC", "partial_unexpected_count": 0,
                                              "unexpected_index_column_names": ["_row"]})
        for r in first.results:
            _raise_if_errored(r)
            if r.success and r.result.get("unexpected_count") == 0:  # no example rows to list: as a single pass
                r.result.setdefault("partial_unexpected_index_list", [])
                r.result.setdefault("partial_unexpected_counts", [])
        failed = [r.expectation_config for r in first.results if not r.success]
        if not failed:
            return first
        again = gx.ExpectationSuite(name=suite.name, expectations=[c.to_json_dict() for c in failed],
                                    meta=suite.meta)
        second = batch.validate(  # the same batch: GX reuses what it reflected and counted
            again, expectation_parameters=parameters,
            result_format={"result_format": "SUMMARY", "unexpected_index_column_names": ["_row"],
                           "return_unexpected_index_query": True, "partial_unexpected_count": KEEP_UNEXPECTED})
        detailed = {}
        for r in second.results:
            _raise_if_errored(r)
            if r.success:
                raise RuntimeError(f"GX gave two verdicts on one expectation of rule {_rule_of(r)}")
            self._read_failures(con, view, r, "duckdb", verdict)
            detailed[_config_key(r.expectation_config)] = r
        first.results = [detailed.get(_config_key(r.expectation_config), r) if not r.success else r
                         for r in first.results]
        return first

    def _read_failures(self, con: duckdb.DuckDBPyConnection, view: str, r: Any, engine: Engine,
                       verdict: ChunkVerdict) -> None:
        """The rows one failed expectation names (GX's index query or index list), with their messages."""
        meta = (r.expectation_config.meta if r.expectation_config else None) or {}
        if engine == "duckdb":
            query = r.result.get("unexpected_index_query")
            if not query:
                raise RuntimeError(f"GX named no failing rows for {meta.get('rule')} on {meta.get('field')}")
            rows_sql = gx_duckdb.index_rows_sql(query)
        else:
            found = pa.table({"_row": pa.array([int(i["_row"]) for i in r.result.get("unexpected_index_list") or []],
                                               pa.int64())})
            con.register("gx_failed_rows", found)
            rows_sql = "SELECT _row FROM gx_failed_rows"
        fld = meta["field"]
        columns = {c[0] for c in con.execute(f"DESCRIBE {view}").fetchall()}
        shown = f"CAST(v.{fld} AS VARCHAR)" if fld in columns and fld != "comment" else "NULL::VARCHAR"
        failed = con.execute(f"SELECT v._row, {shown} FROM {view} v SEMI JOIN ({rows_sql}) f ON f._row = v._row "
                             f"ORDER BY v._row").fetchall()
        if engine == "pandas":
            con.unregister("gx_failed_rows")
        for row, value in failed:
            verdict.findings[int(row)].append(Finding(meta["rule"], fld, _message(value, meta)))


def _rule_of(r: Any) -> Any:
    return ((r.expectation_config.meta if r.expectation_config else None) or {}).get("rule")


def _config_key(config: Any) -> str:
    """An expectation's identity in a result (its kwargs without the batch they ran on)."""
    kwargs = {k: v for k, v in (config.kwargs or {}).items() if k != "batch_id"}
    return json.dumps([config.type, kwargs, config.meta], sort_keys=True, default=str)


def _raise_if_errored(r: Any) -> None:
    """An expectation GX could not compute is an error of the pipeline, never a pass or a silent fail."""
    info = r.exception_info or {}
    infos = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for i in infos:
        if i.get("raised_exception"):
            rule = ((r.expectation_config.meta if r.expectation_config else None) or {}).get("rule")
            raise RuntimeError(f"GX could not evaluate an expectation of rule {rule}: {i.get('exception_message')}")


def _message(value: str | None, meta: dict[str, Any]) -> str:
    """`<field> '<value>': <detail>`; free text (comments, may hold PHI) is never echoed."""
    fld, detail = meta["field"], meta.get("detail") or rule_info(meta["rule"]).message
    if value is None:
        return f"{fld}: {detail}"
    text = str(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{fld} {text!r}: {detail}"


REDACTED = "[redacted: free text]"
_VALUE_LISTS = ("unexpected_list", "partial_unexpected_list")
_INDEX_LISTS = ("unexpected_index_list", "partial_unexpected_index_list")


def _redact_free_text(res: dict[str, Any]) -> None:
    """Free text (comments) may hold PHI: stored results keep counts and row numbers, never the text."""
    for key in _VALUE_LISTS:
        if isinstance(res.get(key), list):
            res[key] = [REDACTED for _ in res[key]]
    for key in _INDEX_LISTS:
        if isinstance(res.get(key), list):
            res[key] = [{k: (REDACTED if k == "comment" else v) for k, v in item.items()} if isinstance(item, dict)
                        else item for item in res[key]]
    if isinstance(res.get("partial_unexpected_counts"), list):
        res["partial_unexpected_counts"] = [{"value": REDACTED, "count": c.get("count")}
                                            for c in res["partial_unexpected_counts"] if isinstance(c, dict)]


def _trim(result: dict[str, Any]) -> dict[str, Any]:
    """Bound the stored size (keep the counts, at most KEEP_UNEXPECTED rows per expectation); no free text."""
    for r in result.get("results", []):
        res = r.get("result") or {}
        for key in (*_VALUE_LISTS, *_INDEX_LISTS, "partial_unexpected_counts"):
            if isinstance(res.get(key), list):
                res[key] = res[key][:KEEP_UNEXPECTED]
        res.pop("unexpected_index_query", None)
        kwargs = (r.get("expectation_config") or {}).get("kwargs") or {}
        if kwargs.get("column") == "comment":
            _redact_free_text(res)
    return result


def _key(r: dict[str, Any]) -> str:
    cfg = r.get("expectation_config") or {}
    kwargs = {k: v for k, v in (cfg.get("kwargs") or {}).items() if k != "batch_id"}
    return json.dumps([cfg.get("type"), kwargs, cfg.get("meta")], sort_keys=True, default=str)


def merge_results(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One validation result for rows validated in several runs (counts summed per expectation).

    Runs may differ in which expectations they ran (vacuous ones are skipped), so
    results are matched by expectation, not by position.
    """
    if len(parts) == 1:
        return parts[0]
    merged = parts[0]
    by_key = {_key(r): r for r in merged["results"]}
    for part in parts[1:]:
        for theirs in part["results"]:
            mine = by_key.get(_key(theirs))
            if mine is None:
                by_key[_key(theirs)] = theirs
                merged["results"].append(theirs)
                continue
            mine["success"] = bool(mine["success"] and theirs["success"])
            a, b = mine.get("result") or {}, theirs.get("result") or {}
            for key in ("element_count", "unexpected_count", "missing_count"):
                if key in a and key in b:
                    a[key] += b[key]
            for key in ("unexpected_index_list", "partial_unexpected_list", "unexpected_list"):
                if isinstance(a.get(key), list) and isinstance(b.get(key), list):
                    a[key] = (a[key] + b[key])[:KEEP_UNEXPECTED]
            if a.get("element_count"):
                a["unexpected_percent"] = 100.0 * a.get("unexpected_count", 0) / a["element_count"]
        merged["success"] = bool(merged["success"] and part["success"])
    stats = merged.setdefault("statistics", {})
    ok = sum(1 for r in merged["results"] if r["success"])
    stats.update(evaluated_expectations=len(merged["results"]), successful_expectations=ok,
                 unsuccessful_expectations=len(merged["results"]) - ok,
                 success_percent=100.0 * ok / max(1, len(merged["results"])))
    return merged
