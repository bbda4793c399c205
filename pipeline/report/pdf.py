"""PDF copies of the HTML reports, printed by headless Chromium (for e-mail attachments).

Chromium is Debian's (`/usr/bin/chromium`, or `$TRIALPIPE_CHROMIUM`); nothing is
downloaded. Without it, or when printing fails, the PDFs are skipped with a
logged note: the HTML reports never depend on them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


def chromium_path() -> Path:
    return Path(os.environ.get("TRIALPIPE_CHROMIUM", "/usr/bin/chromium"))


@dataclass(frozen=True)
class PrintJob:
    html: Path
    pdf: Path
    landscape: bool = False


def print_pdfs(jobs: list[PrintJob], timeout_ms: float = 60_000) -> list[Path]:
    """Print each HTML file to its PDF (A4, backgrounds on); returns the PDFs written, [] when not possible."""
    exe = chromium_path()
    if not exe.exists():
        log.info("no Chromium at %s: PDF copies of the reports skipped (the HTML reports are complete)", exe)
        return []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        log.info("playwright is not installed: PDF copies of the reports skipped")
        return []
    written: list[Path] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(exe), args=list(CHROMIUM_ARGS), timeout=timeout_ms)
            try:
                page = browser.new_page()
                for job in jobs:
                    page.goto(job.html.resolve().as_uri(), wait_until="load", timeout=timeout_ms)
                    page.emulate_media(media="print")
                    # paper cannot be unfolded: print the folded tables (the numbers behind figures stay in the HTML)
                    page.evaluate("document.querySelectorAll('details.more').forEach(d => { d.open = true; })")
                    tmp = job.pdf.with_name(f".{job.pdf.name}.tmp")
                    page.pdf(path=str(tmp), format="A4", landscape=job.landscape, print_background=True,
                             margin={"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"},
                             display_header_footer=True, header_template="<span></span>",
                             footer_template='<div style="font-size:8px;width:100%;text-align:center">'
                                             '<span class="pageNumber"></span> / <span class="totalPages"></span>'
                                             '</div>')
                    tmp.replace(job.pdf)
                    written.append(job.pdf)
            finally:
                browser.close()
    except Exception as exc:  # the PDF is a convenience copy; never fail the run for it
        log.warning("PDF copies of the reports not written: %s", exc)
    return written
