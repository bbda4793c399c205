"""Run the checked-in Great Expectations suites on a chunk and read the verdict per row.

GX Core 1.x has no DuckDB data source, so each chunk is validated through GX's
pandas data source; `result_format` COMPLETE with `_row` as the unexpected
index column tells exactly which records broke which expectation.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")
logging.getLogger("great_expectations").setLevel(logging.WARNING)

import great_expectations as gx  # noqa: E402
import pandas as pd  # noqa: E402

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


_TYPES_IN_CONDITION = re.compile(r'^event_type (?:== "([a-z_]+)"|in \[([^\]]*)\])')


def _condition_types(condition: str | None) -> set[str] | None:
    """Event types a row condition selects (None: it is not a plain event_type filter)."""
    if not condition:
        return None
    m = _TYPES_IN_CONDITION.match(condition)
    if not m:
        return None
    return {m.group(1)} if m.group(1) else set(re.findall(r'"([a-z_]+)"', m.group(2)))


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def needed_columns(expectations: list[dict[str, Any]], available: list[str]) -> list[str]:
    """The frame columns a set of expectations reads (plus `_row`, the index GX reports).

    GX filters the whole batch frame once per expectation, so handing it only the
    columns the suite looks at makes each run several times cheaper; verdicts are
    unchanged because no expectation sees another column.
    """
    names = {"_row"}
    for exp in expectations:
        kw = exp["kwargs"]
        names.update(kw[k] for k in ("column", "column_A", "column_B") if k in kw)
        names.update(kw.get("column_list") or [])
        names.update(_NAME.findall(kw.get("row_condition") or ""))
    return [c for c in available if c in names]


def is_vacuous(exp: dict[str, Any], filled: set[str], types: set[str]) -> bool:
    """True when an expectation cannot fail on this batch, so running it changes no verdict.

    Value checks ignore empty cells, so a check of a column that is empty in every
    row passes; a check whose condition selects event types absent from the
    batch passes too. Only `not_be_null` checks must run on empty columns.
    """
    kw = exp["kwargs"]
    selected = _condition_types(kw.get("row_condition"))
    if selected is not None and not (selected & types):
        return True
    if exp["type"] == "expect_column_values_to_not_be_null":
        return False
    columns = [kw[k] for k in ("column", "column_A", "column_B") if k in kw]
    return any(c not in filled for c in columns)


class RowChecker:
    """One GX context for a process; validates batches against the checked-in suites."""

    def __init__(self, suite_names: tuple[str, ...] = SUITE_NAMES) -> None:
        self.ctx = gx.get_context(mode="ephemeral")
        _quiet(self.ctx)
        self.datasource = self.ctx.data_sources.add_pandas("landing_chunks")
        self.batch_definition = (
            self.datasource.add_dataframe_asset("chunk").add_batch_definition_whole_dataframe("whole_chunk")
        )
        self.suites = {name: load_suite_dict(name) for name in suite_names}

    def check(self, frame: pd.DataFrame, parameters: dict[str, Any],
              suites: tuple[str, ...] = SUITE_NAMES) -> ChunkVerdict:
        try:
            return self._check(frame, parameters, suites)
        finally:
            self.release()

    def _engine_caches(self) -> list[dict[Any, Any]]:
        """The pandas execution engine's batch-frame and metric caches (GX keeps both for the engine's life)."""
        engine = self.datasource.get_execution_engine()
        caches = (getattr(engine.batch_manager, "_batch_data_cache", None), getattr(engine, "_metric_cache", None))
        return [c for c in caches if isinstance(c, dict)]

    def release(self) -> None:
        """Drop the frames and metrics GX keeps after a validation.

        Kept, they grow without bound over a large file (the peak RSS of a 2 GB
        delivery passed 1.5 GB). Verdicts are already read when this runs.
        """
        for cache in self._engine_caches():
            cache.clear()

    def cached_items(self) -> int:
        """Frames and metrics the GX engine still holds (0 after each check)."""
        return sum(len(cache) for cache in self._engine_caches())

    def _check(self, frame: pd.DataFrame, parameters: dict[str, Any],
               suites: tuple[str, ...]) -> ChunkVerdict:
        verdict = ChunkVerdict()
        position = {int(r): i for i, r in enumerate(frame["_row"].tolist())}
        filled = {c for c in frame.columns if frame[c].notna().any()}
        types = set(frame["event_type"].dropna().unique()) if "event_type" in frame else set()
        for name in suites:
            d = self.suites[name]
            if name in TYPE_SUITES:  # a per-type suite sees only that type's rows
                if name not in types:
                    continue
                part = frame[frame["event_type"] == name]
                part_filled = {c for c in part.columns if part[c].notna().any()}
                active = [e for e in d["expectations"] if not is_vacuous(e, part_filled, {name})]
            else:
                part = frame
                active = [e for e in d["expectations"] if not is_vacuous(e, filled, types)]
            part = part[needed_columns(active, list(part.columns))]
            batch = self.batch_definition.get_batch(batch_parameters={"dataframe": part})
            suite = gx.ExpectationSuite(name=d["name"], expectations=active, meta=d.get("meta", {}))
            result = batch.validate(
                suite, expectation_parameters=parameters,
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["_row"]},
            )
            for r in result.results:
                if r.success:
                    continue
                meta = (r.expectation_config.meta if r.expectation_config else None) or {}
                for item in r.result.get("unexpected_index_list") or []:
                    row = int(item["_row"])
                    verdict.findings[row].append(Finding(meta["rule"], meta["field"],
                                                         _message(frame, position.get(row), meta)))
            out = _trim(result.to_json_dict())
            out.setdefault("meta", {})["skipped_vacuous_expectations"] = len(d["expectations"]) - len(active)
            verdict.results[name] = out
        return verdict


def _message(frame: pd.DataFrame, pos: int | None, meta: dict[str, Any]) -> str:
    fld, detail = meta["field"], meta.get("detail") or rule_info(meta["rule"]).message
    if pos is None or fld not in frame.columns or fld == "comment":  # never echo free text (may hold PHI)
        return f"{fld}: {detail}"
    value = frame.iat[pos, frame.columns.get_loc(fld)]
    if value is None or (isinstance(value, float) and math.isnan(value)):
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
