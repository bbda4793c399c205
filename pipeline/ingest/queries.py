"""Query lists back to sites: every rejected row (and file) a site can act on.

Written to `<warehouse>/queries/<site>/query_list.csv` and `.html` after each
ingest, and into each registered site's outbox (`pipeline.ingest.outbox`), where the
site's own account reads them. A rejected row's query is open until the same site delivers an event
with the same event_id that is accepted after it (a corrected resubmission): in
a later batch, or in the same file when the rejected row lost to it rather than
conflicting with it. Another site's or an earlier event with that event_id never
closes it, so a row rejected as `event_id_conflict` stays on the list. Files
rejected whole head the list.
"""

from __future__ import annotations

import hashlib
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from pipeline.config import Paths, Study
from pipeline.ingest.outbox import write_outboxes
from pipeline.store.commit import safe_component
from pipeline.store.files import atomic_write_bytes
from pipeline.store.warehouse import dataset_sql
from pipeline.textsafe import csv_text

if TYPE_CHECKING:
    from pipeline.ingest.stage import StagedFile

COLUMNS = ("file", "record", "event_id", "rule", "message")


def _split(message: str) -> tuple[str, str]:
    rule, _, text = message.partition(": ")
    return rule, text


def explode(source_file: str, record: int | None, event_id: str | None, messages: list[str]) -> list[dict[str, Any]]:
    return [{"file": source_file, "record": record, "event_id": event_id, "rule": r, "message": m}
            for r, m in map(_split, messages)]


def open_queries(paths: Paths) -> dict[str, list[dict[str, Any]]]:
    """Open queries per site folder: files rejected whole first, then rows in delivery order."""
    sql = f"""
        SELECT q.site_id, q.source_file, q.source_row, q.event_id, q.messages, q.rules
        FROM ({dataset_sql(paths, 'quarantine')}) q
        ANTI JOIN ({dataset_sql(paths, 'events')}) e
          ON e.event_id = q.event_id AND e.site_id = q.site_id
         AND (e.ingested_at > q.ingested_at
              OR (e.batch_id = q.batch_id AND NOT list_contains(q.rules, 'event_id_conflict')))
        ORDER BY q.site_id, q.source_row IS NOT NULL, q.source_file, q.source_row
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for site, file, row, event_id, messages, rules in duckdb.connect().execute(sql).fetchall():
        msgs = messages or [f"{r}: " for r in rules]
        if row is None:  # a file rejected whole: the message is the reason, not prefixed
            msgs = [f"{r}: {m}" for r, m in zip(rules, messages or [""] * len(rules), strict=False)]
        out.setdefault(site, []).extend(explode(file, row, event_id, msgs))
    return out


def query_id(site: str, row: dict[str, Any]) -> str:
    """Stable id of one open query (site, file, record, event_id, rule): the notification ledger's key."""
    parts = (site, str(row["file"]), str(row["record"]), str(row["event_id"]), str(row["rule"]))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]


def to_csv(rows: list[dict[str, Any]]) -> str:
    return csv_text(rows, COLUMNS)


def to_html(site: str, rows: list[dict[str, Any]]) -> str:
    e = html.escape
    body = "".join(
        "<tr>" + "".join(f"<td>{e('' if r[k] is None else str(r[k]))}</td>" for k in COLUMNS) + "</tr>" for r in rows
    )
    head = "".join(f"<th>{e(k)}</th>" for k in COLUMNS)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Query list {e(site)}</title></head><body>"
            f"<h1>Query list for site {e(site)}</h1><p>{len(rows)} open queries. Correct and resubmit each row "
            f"with the same event_id; a file rejected whole must be delivered again.</p>"
            f"<table border='1'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>")


def query_files(site: str, rows: list[dict[str, Any]]) -> dict[str, bytes]:
    return {"query_list.csv": to_csv(rows).encode("utf-8"), "query_list.html": to_html(site, rows).encode("utf-8")}


def write_query_lists(paths: Paths, study: Study) -> list[Path]:
    """The query lists in the warehouse (every site folder seen) and in each registered site's outbox."""
    queries = open_queries(paths)
    written = []
    for site in sorted(set(study.site_ids) | set(queries)):
        folder = paths.queries_dir / safe_component(site)
        for name, data in query_files(site, queries.get(site, [])).items():
            atomic_write_bytes(data, folder / name)
            written.append(folder / name)
    own = {site: query_files(site, queries.get(site, [])) for site in study.site_ids}
    return written + write_outboxes(paths, study, own)


def query_rows_for_validation(con: duckdb.DuckDBPyConnection, staged: StagedFile) -> list[dict[str, Any]]:
    if staged.rejected is not None:
        return [{"file": staged.file.path.name, "record": None, "event_id": None, "rule": staged.rejected.rule,
                 "message": staged.rejected.message}]
    rows = con.execute("""
        SELECT r._row, r.event_id, v.messages FROM rows r JOIN status s ON s.seq = r.seq
        JOIN verdicts v ON v.seq = r.seq WHERE s.status = 'rejected' ORDER BY r._row
    """).fetchall()
    out: list[dict[str, Any]] = []
    for row, event_id, messages in rows:
        out += explode(staged.file.path.name, row, event_id, messages or [])
    return out


def format_query_list(site: str, name: str, staged: StagedFile, rows: list[dict[str, Any]]) -> str:
    lines = [f"Query list for site {site}, file {name} (sha256 {staged.sha256[:16]}…)"]
    if staged.rejected is not None:
        lines.append(f"FILE REJECTED ({staged.rejected.rule}): {staged.rejected.message}")
    else:
        lines.append(f"{staged.received} record(s) read; {len({r['record'] for r in rows})} would be rejected")
        if staged.unknown_columns:
            lines.append(f"warning unknown_column: {', '.join(staged.unknown_columns)} (ignored)")
    if rows:
        lines.append(to_csv(rows).rstrip("\n"))
    return "\n".join(lines)
