"""Great Expectations Data Docs from the stored validation results (issue 4)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.report import datadocs
from pipeline.report.datadocs import DataDocs, build_data_docs
from tests.report.helpers import DATA, PHONE, SCRIPT, assert_self_contained

NL01_PAGE = "validations/NL01/b-NL01-0.symptom_report.html"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DataDocs]:
    root = tmp_path_factory.mktemp("docs")
    shutil.copytree(DATA / "validations", root / "validations")
    return root, build_data_docs(root / "validations", root / "data_docs")


def test_every_stored_result_gets_a_page_and_a_line_in_the_index(built: tuple[Path, DataDocs]) -> None:
    root, docs = built
    assert docs.index == root / "data_docs" / "index.html"
    got = [(e.site_id, e.batch_id, e.suite_name, e.success, e.evaluated, e.unsuccessful, e.href) for e in docs.entries]
    assert got == [
        ("NL01", "b-NL01-0", "symptom_report", False, 4, 3, NL01_PAGE),
        ("NL02", "b-NL02-0", "symptom_report", True, 4, 0, "validations/NL02/b-NL02-0.symptom_report.html"),
    ]
    index = docs.index.read_text(encoding="utf-8")
    assert f'href="{NL01_PAGE}"' in index
    assert_self_contained(index, ("validations/NL02/b-NL02-0.symptom_report.html", NL01_PAGE, "../dq_dashboard.html"))


def test_a_page_is_gx_rendered_with_site_text_escaped_and_nothing_loaded(built: tuple[Path, DataDocs]) -> None:
    root, _ = built
    page = (root / "data_docs" / NL01_PAGE).read_text(encoding="utf-8")
    assert "values must always be less than or equal to" in page and "characters long" in page  # GX renderer
    assert SCRIPT not in page and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert_self_contained(page, ("../../index.html",))


def test_values_found_by_a_phi_rule_are_withheld_but_counted(built: tuple[Path, DataDocs]) -> None:
    root, _ = built
    page = (root / "data_docs" / NL01_PAGE).read_text(encoding="utf-8")
    assert PHONE.split()[-1] not in page and "[withheld by trialpipe: possible PHI]" in page
    assert "1 unexpected values found" in page


def test_unchanged_results_are_not_rendered_again(built: tuple[Path, DataDocs],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root, first = built

    def fail(*_: object) -> str:
        raise AssertionError("rendered again")

    monkeypatch.setattr(datadocs, "render_validation_page", fail)
    assert build_data_docs(root / "validations", root / "data_docs").entries == first.entries


def test_cutoff_unreadable_files_and_no_results(tmp_path: Path) -> None:
    validations = tmp_path / "validations"
    shutil.copytree(DATA / "validations", validations)
    (validations / "NL02" / "b-NL02-1.envelope.json").write_text("{not json", encoding="utf-8")
    only = build_data_docs(validations, tmp_path / "a", batch_ids={"b-NL02-0", "b-NL02-1"})
    assert [(e.batch_id, e.href is None, e.error.startswith("unreadable")) for e in only.entries] == [
        ("b-NL02-0", False, False), ("b-NL02-1", True, True)]
    assert build_data_docs(tmp_path / "none", tmp_path / "b") == DataDocs(None, ())
    assert not (tmp_path / "b").exists()


def test_sanitise_escapes_data_but_leaves_the_suite_alone() -> None:
    stored = json.loads((DATA / "validations" / "NL01" / "b-NL01-0.symptom_report.json").read_text())
    clean = datadocs.sanitise_result(stored)
    assert SCRIPT not in json.dumps(clean["results"][0]["result"])
    assert clean["results"][0]["expectation_config"] == stored["results"][0]["expectation_config"]


def test_pages_of_another_renderer_version_are_rendered_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def render(result: dict[str, object], home: str) -> str:
        calls.append(str(result["suite_name"]))
        return f'<meta name="generator" content="{datadocs.page_tag()}">'

    monkeypatch.setattr(datadocs, "render_validation_page", render)
    build_data_docs(DATA / "validations", tmp_path)
    build_data_docs(DATA / "validations", tmp_path)
    assert len(calls) == 2
    monkeypatch.setattr(datadocs, "PAGE_VERSION", datadocs.PAGE_VERSION + 1)
    build_data_docs(DATA / "validations", tmp_path)
    assert len(calls) == 4
