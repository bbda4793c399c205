"""Regenerate the stored GX validation results used by the report tests (real GX 1.x output).

    uv run --frozen python tests/report/data/make_validations.py

Writes them as the ingest stores them
(validations/<site>/<batch_id>.<suite>.json, `ExpectationSuiteValidationResult.to_json_dict()`,
unexpected rows identified by `_row`). One result fails on site text
(an injected script, a spreadsheet formula, a phone number), the other passes.
"""

from __future__ import annotations

import json
from pathlib import Path

import great_expectations as gx
import pandas as pd

HERE = Path(__file__).parent / "validations"


def main() -> None:
    ctx = gx.get_context(mode="ephemeral")
    suite = ctx.suites.add(gx.ExpectationSuite(name="symptom_report"))
    suite.add_expectation(gx.expectations.ExpectColumnValuesToBeBetween(column="leg_pain_nrs", min_value=0,
                                                                        max_value=10))
    suite.add_expectation(gx.expectations.ExpectColumnValueLengthsToBeBetween(column="comment", max_value=20))
    suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column="event_id"))
    suite.add_expectation(gx.expectations.ExpectColumnValuesToNotMatchRegexList(
        column="comment", regex_list=[r"\+\d{8,15}"], meta={"rule": "phi_in_comment", "field": "comment"}))
    source = ctx.data_sources.add_pandas("landing")
    batches = {
        ("NL01", "b-NL01-0"): pd.DataFrame({
            "event_id": ["E1", "E2", "E3", "E4"], "leg_pain_nrs": [3, 11, 5, 4],
            "comment": ["ok", "<script>window.__pwned=1</script>", '=HYPERLINK("http://x","y")',
                        "call +31612345678"]}),
        ("NL02", "b-NL02-0"): pd.DataFrame({"event_id": ["E4"], "leg_pain_nrs": [4], "comment": ["fine"]}),
    }
    for (site, batch_id), frame in batches.items():
        frame.insert(0, "_row", range(2, len(frame) + 2))
        asset = source.add_dataframe_asset(batch_id)
        batch = asset.add_batch_definition_whole_dataframe("file").get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format={"result_format": "COMPLETE",
                                                      "unexpected_index_column_names": ["_row"]})
        out = HERE / site / f"{batch_id}.{suite.name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.to_json_dict(), indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
