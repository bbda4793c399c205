"""Great Expectations Data Docs from the real validation results the ingest stored.

The ingest keeps every `ExpectationSuiteValidationResult.to_json_dict()` under
``validations/<site>/<batch_id>.<suite>.json`` (``<batch_id>.json`` holding one
result or a list of them is read too). Each one is loaded back into GX
(`ExpectationSuiteValidationResultSchema`) and rendered with GX's own
`ValidationResultsPageRenderer` and `DefaultJinjaPageView` — the renderers GX's
site builder uses — into ``<out>/validations/<site>/<batch_id>.<suite>.html``, with an
index page of our own. Two deviations from GX's stock page, both deliberate:

* GX 1.x puts values from the data (unexpected values, batch markers) into the
  page unescaped; those values are site text, so every string in a result's
  ``result``, ``exception_info`` and ``meta`` is HTML-escaped before rendering.
* GX's page template loads Bootstrap, jQuery and fonts from CDNs; ours
  (``templates/gx_validation_page.html``) keeps GX's sections and inline styles
  but loads nothing and runs no script, so the pages work offline.

Pages are re-rendered only when their JSON is newer or they were rendered by another
version of this module or of GX (importing GX takes seconds).
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from pipeline.report.escape import PHI_RULES, WITHHELD
from pipeline.report.render import render_template
from pipeline.store.files import atomic_write_bytes

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
#: Bump when what a page shows changes (sanitising, template): cached pages are then rendered again.
PAGE_VERSION = 2
#: GX links the suite name to an expectation-suite page of its own site layout, which we do not build.
_REMOTE_URL = re.compile(r"url\(\s*['\"]?[a-z]+:[^)]*\)", re.I)
_SUITE_LINK = re.compile(r'<a href="(?:\.\./)*expectations/[^"]*"\s*>(.*?)</a>', re.S)


@dataclass(frozen=True)
class ValidationEntry:
    """One stored validation result and its Data Docs page (href relative to the Data Docs folder)."""

    site_id: str
    batch_id: str
    suite_name: str
    success: bool | None
    evaluated: int | None
    unsuccessful: int | None
    href: str | None
    error: str = ""


@dataclass(frozen=True)
class DataDocs:
    index: Path | None
    entries: tuple[ValidationEntry, ...]

    @property
    def failed(self) -> int:
        return sum(1 for e in self.entries if e.success is False)


def _escape_strings(value: Any) -> Any:
    if isinstance(value, str):
        return html.escape(value)
    if isinstance(value, list):
        return [_escape_strings(v) for v in value]
    if isinstance(value, dict):
        return {k: _escape_strings(v) for k, v in value.items()}
    return value


def _withhold(value: Any, key: str = "") -> Any:
    if key == "unexpected_index_column_names":
        return value
    if isinstance(value, str):
        return WITHHELD
    if isinstance(value, list):
        return [_withhold(v) for v in value]
    if isinstance(value, dict):
        return {k: v if k == "_row" else _withhold(v, k) for k, v in value.items()}
    return value


def _rule(expectation: dict[str, Any]) -> str:
    meta = (expectation.get("expectation_config") or {}).get("meta") or {}
    return str(meta.get("rule", ""))


def sanitise_result(result: dict[str, Any]) -> dict[str, Any]:
    """A copy of a validation result (JSON dict) safe to publish.

    Data-derived strings are HTML-escaped; the values an expectation of a PHI rule (meta.rule, as the
    ingest's suites set it) found are withheld, only their counts and row numbers are kept.
    """
    out = dict(result)
    out["meta"] = _escape_strings(result.get("meta", {}))
    out["results"] = [
        {**r, "result": _escape_strings(_withhold(r.get("result", {})) if _rule(r) in PHI_RULES else r.get(
            "result", {})), "exception_info": _escape_strings(r.get("exception_info", {}))}
        for r in result.get("results", [])
    ]
    return out


def _results_in(path: Path) -> list[dict[str, Any]]:
    """A stored file holds one result (a dict) or several (a list of dicts)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    items = data if isinstance(data, list) else [data]
    if not all(isinstance(i, dict) and "results" in i for i in items):
        raise ValueError("not an ExpectationSuiteValidationResult")
    return items


def page_tag() -> str:
    """Identifies how a page was rendered; a cached page with another tag is rendered again."""
    from importlib.metadata import version

    return f"trialpipe-datadocs/{PAGE_VERSION} great-expectations/{version('great-expectations')}"


def _is_current(page: Path, source: Path) -> bool:
    try:
        if page.stat().st_mtime < source.stat().st_mtime:
            return False
        with page.open(encoding="utf-8") as fh:
            return f'content="{page_tag()}"' in fh.read(2048)
    except OSError:
        return False


def gx_styles() -> Markup:
    """GX's default Data Docs stylesheet without its remote background images (package text, trusted)."""
    from importlib.resources import files

    css = files("great_expectations").joinpath("render/view/static/styles/data_docs_default_styles.css").read_text()
    return Markup(_REMOTE_URL.sub("none", css))


def render_validation_page(result: dict[str, Any], home: str) -> str:
    """One GX validation-results page for a stored result (JSON dict); imports GX."""
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    loaded = ExpectationSuiteValidationResultSchema().load(sanitise_result(result))
    document = ValidationResultsPageRenderer().render(loaded)
    view = DefaultJinjaPageView(custom_views_directory=str(TEMPLATES))
    page = str(view.render(document, template="gx_validation_page.html", home=home, gx_styles=gx_styles(),
                           tag=page_tag(), heading=f"Validation of {loaded.suite_name}"))
    return _SUITE_LINK.sub(r"\1", page)


def _stats(result: dict[str, Any]) -> tuple[bool | None, int | None, int | None]:
    stats = result.get("statistics") or {}
    success = result.get("success")
    return (None if success is None else bool(success), stats.get("evaluated_expectations"),
            stats.get("unsuccessful_expectations"))


def batch_of(path: Path) -> str:
    """The batch id of a stored result: the file name up to the first dot."""
    return path.name.split(".", 1)[0]


def _files(validations_dir: Path, batch_ids: set[str] | None) -> Iterable[Path]:
    for path in sorted(validations_dir.glob("*/*.json")):
        if not path.name.startswith(".") and (batch_ids is None or batch_of(path) in batch_ids):
            yield path


def build_data_docs(validations_dir: Path, out_dir: Path, batch_ids: set[str] | None = None) -> DataDocs:
    """Render every stored validation result (of `batch_ids`, when given) and an index; returns what was built.

    With no stored result, nothing is written and the index is None ("no validations yet").
    """
    entries: list[ValidationEntry] = []
    files = list(_files(validations_dir, batch_ids)) if validations_dir.exists() else []
    if not files:
        return DataDocs(None, ())
    for path in files:
        site, batch, stem = path.parent.name, batch_of(path), path.name.removesuffix(".json")
        try:
            results = _results_in(path)
        except (OSError, ValueError) as exc:
            entries.append(ValidationEntry(site, batch, "", None, None, None, None, f"unreadable: {exc}"))
            continue
        for k, result in enumerate(results):
            name = stem if len(results) == 1 else f"{stem}-{k + 1}"
            page = out_dir / "validations" / site / f"{name}.html"
            href: str | None = "validations/" + quote(site) + "/" + quote(name) + ".html"
            success, evaluated, unsuccessful = _stats(result)
            error = ""
            if not _is_current(page, path):
                try:
                    atomic_write_bytes(render_validation_page(result, "../../index.html").encode("utf-8"), page)
                except Exception as exc:  # a result GX cannot render must not stop the dashboard
                    log.warning("cannot render Data Docs page for %s: %s", path, exc)
                    error, href = f"not rendered: {type(exc).__name__}: {exc}", None
            entries.append(ValidationEntry(site, batch, str(result.get("suite_name", "")), success, evaluated,
                                           unsuccessful, href, error))
    index = out_dir / "index.html"
    text = render_template("datadocs_index.html.j2", entries=entries,
                           failed=sum(1 for e in entries if e.success is False))
    atomic_write_bytes(text.encode("utf-8"), index)
    return DataDocs(index, tuple(entries))
