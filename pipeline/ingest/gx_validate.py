"""Run the checked-in Great Expectations suites on a chunk and read the verdict per row.

GX Core 1.x has no DuckDB data source, so each chunk is validated through GX's
pandas data source; `result_format` COMPLETE with `_row` as the unexpected
index column tells exactly which records broke which expectation.
"""

from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")
logging.getLogger("great_expectations").setLevel(logging.WARNING)

import great_expectations as gx  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.ingest.suites import SUITE_NAMES, load_suite_dict  # noqa: E402
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


class RowChecker:
    """One GX context for a process; validates chunks against the three suites."""

    def __init__(self, suite_names: tuple[str, ...] = SUITE_NAMES) -> None:
        self.ctx = gx.get_context(mode="ephemeral")
        _quiet(self.ctx)
        batch_def = (
            self.ctx.data_sources.add_pandas("landing_chunks")
            .add_dataframe_asset("chunk")
            .add_batch_definition_whole_dataframe("whole_chunk")
        )
        self.definitions = {}
        for name in suite_names:
            d = load_suite_dict(name)
            suite = self.ctx.suites.add(gx.ExpectationSuite(name=d["name"], expectations=d["expectations"],
                                                            meta=d.get("meta", {})))
            self.definitions[name] = self.ctx.validation_definitions.add(
                gx.ValidationDefinition(name=f"dts_{name}", data=batch_def, suite=suite)
            )

    def check(self, frame: pd.DataFrame, parameters: dict[str, Any],
              suites: tuple[str, ...] = SUITE_NAMES) -> ChunkVerdict:
        verdict = ChunkVerdict()
        position = {int(r): i for i, r in enumerate(frame["_row"].tolist())}
        for name in suites:
            result = self.definitions[name].run(
                batch_parameters={"dataframe": frame},
                expectation_parameters=parameters,
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["_row"]},
            )
            for r in result.results:
                if r.success:
                    continue
                meta = r.expectation_config.meta or {}
                for item in r.result.get("unexpected_index_list") or []:
                    row = int(item["_row"])
                    verdict.findings[row].append(Finding(meta["rule"], meta["field"],
                                                         _message(frame, position.get(row), meta)))
            verdict.results[name] = _trim(result.to_json_dict())
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


def _trim(result: dict[str, Any]) -> dict[str, Any]:
    """Bound the stored size: keep the counts, list at most KEEP_UNEXPECTED rows per expectation."""
    for r in result.get("results", []):
        res = r.get("result") or {}
        for key in ("unexpected_list", "unexpected_index_list", "partial_unexpected_list",
                    "partial_unexpected_index_list", "partial_unexpected_counts"):
            if isinstance(res.get(key), list):
                res[key] = res[key][:KEEP_UNEXPECTED]
        res.pop("unexpected_index_query", None)
    return result


def merge_results(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One validation result for a file validated in several chunks (counts summed)."""
    if len(parts) == 1:
        return parts[0]
    merged = parts[0]
    for part in parts[1:]:
        for mine, theirs in zip(merged["results"], part["results"], strict=True):
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
    stats.update(successful_expectations=ok, unsuccessful_expectations=len(merged["results"]) - ok,
                 success_percent=100.0 * ok / max(1, len(merged["results"])))
    return merged
