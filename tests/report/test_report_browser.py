"""The written reports in headless Chromium (issue 4): they render offline, completely, and run no site text.

Debian's chromium (/usr/bin/chromium) is driven by Playwright; nothing is
downloaded. Without it the tests are skipped locally, but fail when $CI is set.
Screenshots are kept as test artefacts (tests/artifacts/ or $TRIALPIPE_ARTIFACTS).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipeline.report.dashboard import DQ_FIGURES, DQ_SECTIONS
from pipeline.report.outcome import OUTCOME_FIGURES, OUTCOME_SECTIONS
from pipeline.report.pdf import CHROMIUM_ARGS, chromium_path
from tests.report.conftest import Written
from tests.report.helpers import SCRIPT

pytestmark = pytest.mark.slow


def _require_chromium() -> None:
    if chromium_path().exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"Chromium is required in CI but {chromium_path()} is missing (apt-get install chromium)")
    pytest.skip(f"{chromium_path()} not installed (Debian package 'chromium'); CI runs these tests")


@dataclass
class Visit:
    page: Any
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(chromium_path()), args=list(CHROMIUM_ARGS))
        yield chromium
        chromium.close()


@pytest.fixture
def visit(browser: Any) -> Iterator[Callable[[Path], Visit]]:
    pages: list[Any] = []

    def open_file(path: Path) -> Visit:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        pages.append(page)
        seen = Visit(page)
        page.on("console", lambda m: seen.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: seen.errors.append(str(e)))
        page.on("request", lambda r: seen.requests.append(r.url))
        page.goto(path.resolve().as_uri(), wait_until="load")
        return seen

    yield open_file
    for page in pages:
        page.close()


def _check_page(seen: Visit, sections: dict[str, str], figures: tuple[str, ...]) -> None:
    page = seen.page
    assert [c for c in seen.console if c.startswith(("error", "warning"))] == [] and seen.errors == []
    assert seen.requests == [page.url]  # the file itself and nothing else: no script, font or style fetched
    for key, title in sections.items():
        heading = page.locator(f"section#{key} > h2")
        assert heading.inner_text() == title and heading.is_visible(), key
    for key in figures:
        svg = page.locator(f"figure#fig-{key} svg")
        assert svg.count() == 1, key
        box = svg.bounding_box()
        assert box and box["width"] > 200 and box["height"] > 80, key
        assert "fingerprint" in page.locator(f"figure#fig-{key} figcaption").inner_text(), key
    assert page.evaluate("typeof window.__pwned") == "undefined"


def test_outcome_report_renders_completely_and_runs_no_site_text(
    written: Written, visit: Callable[[Path], Visit], artifacts: Callable[[Path], Path], tmp_path: Path,
) -> None:
    seen = visit(written.file("outcome_report.html"))
    _check_page(seen, OUTCOME_SECTIONS, OUTCOME_FIGURES)
    message = seen.page.locator("table[data-table=alerts] td", has_text="rejected record; comment:")
    assert message.inner_text() == f"rejected record; comment: {SCRIPT}"  # shown as text, not run
    summary = seen.page.locator("#alert-summary")  # red flags first: on screen without scrolling
    top, first = summary.bounding_box(), seen.page.locator("section#enrolment").bounding_box()
    assert summary.is_visible() and top and first and top["y"] + top["height"] < min(first["y"], 900)
    assert "2 — 1 validated, 1 UNVALIDATED" in summary.inner_text()
    seen.page.click("#alert-summary a[href='#alerts']")
    assert seen.page.evaluate("location.hash") == "#alerts"
    seen.page.screenshot(path=str(tmp_path / "outcome_report.png"), full_page=True)
    artifacts(tmp_path / "outcome_report.png")


def test_dq_dashboard_renders_completely_and_links_the_data_docs(
    written: Written, visit: Callable[[Path], Visit], artifacts: Callable[[Path], Path], tmp_path: Path,
) -> None:
    seen = visit(written.file("dq_dashboard.html"))
    _check_page(seen, DQ_SECTIONS, DQ_FIGURES)
    raw = seen.page.locator("table[data-table=examples-out_of_range] td", has_text="window.__pwned").first
    assert SCRIPT in raw.inner_text()
    seen.page.screenshot(path=str(tmp_path / "dq_dashboard.png"), full_page=True)
    artifacts(tmp_path / "dq_dashboard.png")
    seen.page.click("#data-docs-link")
    seen.page.wait_for_load_state("load")
    assert seen.page.url.endswith("/data_docs/index.html")
    seen.page.click("table[data-table=validations] >> text=open")
    seen.page.wait_for_load_state("load")
    assert "Validation of symptom_report" in seen.page.locator("h1").inner_text()
    assert seen.page.get_by_text(SCRIPT).count() >= 1 and seen.page.evaluate("typeof window.__pwned") == "undefined"
    assert [c for c in seen.console if c.startswith("error")] == [] and seen.errors == []
    assert all(u.startswith("file://") for u in seen.requests)


def test_pdf_copies_are_printed_for_email(written: Written, artifacts: Callable[[Path], Path]) -> None:
    _require_chromium()
    for name in ("outcome_report.pdf", "dq_dashboard.pdf"):
        pdf = written.paths.reports_dir / name
        assert pdf in written.files, f"{name} not written: see the log of pipeline.report.pdf"
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 20_000
        artifacts(pdf)
