"""The rule catalogue is data; every rule is implemented once; the GX suites do not drift."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pipeline.ingest.suites import SUITE_NAMES, load_suite_dict, suite_dict
from pipeline.rules import catalogue

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_suites_equal_the_suites_built_from_the_schema() -> None:
    for name in SUITE_NAMES:
        assert load_suite_dict(name) == json.loads(json.dumps(suite_dict(name))), (
            f"expectations/{name}.json is stale: run `make suites`")


def test_every_rule_of_the_catalogue_is_implemented() -> None:
    in_suites = {e["meta"]["rule"] for n in SUITE_NAMES for e in load_suite_dict(n)["expectations"]}
    code = "".join(p.read_text() for p in (ROOT / "pipeline").rglob("*.py"))
    in_code = set(re.findall(r"'([a-z0-9_]+)'|\"([a-z0-9_]+)\"", code))
    named_in_code = {a or b for a, b in in_code}
    for rule in catalogue():
        assert rule in in_suites or rule in named_in_code, f"rule {rule} has no implementation"


def test_every_rule_is_documented_for_sites() -> None:
    doc = (ROOT / "docs" / "delivering-data.md").read_text()
    for rule in catalogue():
        assert f"`{rule}`" in doc, f"docs/delivering-data.md does not explain {rule}"
