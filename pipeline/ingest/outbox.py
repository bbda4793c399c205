"""Each site's outbox: what the site must act on, in a folder its own account can read.

A site coordinator can read the site's landing folder, not the warehouse. After every ingest
`<outbox>/<site>/` (study.toml `outbox`, relative to the study file) receives the site's open
query list (`query_list.csv`, `query_list.html`) and its data-quality summary per ISO week of
ingestion (`dq_summary.csv`, `dq_summary.html`), each replaced atomically.

Only registered sites get a folder, named by their id (letters, digits, '-', '_'), and each
file is computed from that site's rows alone: a landing folder or a stored row whose site id
is not registered (say `..` or `NL01/../NL02`) reaches no outbox. The outbox lies outside the
landing zone (`config.outbox_dir`), and nothing in ingest reads it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from pipeline.config import ConfigError, Paths, Study, outbox_dir
from pipeline.store.files import atomic_write_bytes
from pipeline.store.warehouse import dataset_sql
from pipeline.textsafe import csv_text

DQ_COLUMNS = ("iso_week", "files", "files_rejected", "received", "accepted", "rejected", "duplicates",
              "rejection_rate", "last_delivery")


def site_folder(root: Path, site: str, study: Study) -> Path:
    """`<outbox>/<site>` for a registered site, refusing anything that would resolve elsewhere."""
    if site not in study.site_ids:
        raise ConfigError(f"no outbox for unregistered site {site!r}")
    folder = root / site
    if folder.is_symlink() or folder.resolve().parent != root.resolve():
        raise ConfigError(f"outbox folder {folder} does not lie directly in {root}: refusing to write there")
    return folder


def dq_summary(paths: Paths, site: str) -> list[dict[str, Any]]:
    """The site's deliveries per ISO week of ingestion, newest first (from the batch ledger only)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    cur = con.execute(f"""
        SELECT strftime(timezone('UTC', ingested_at), '%G-W%V') AS iso_week,
               count(*) AS files, count(*) FILTER (status = 'rejected') AS files_rejected,
               coalesce(sum(received), 0) AS received, coalesce(sum(accepted), 0) AS accepted,
               coalesce(sum(rejected), 0) AS rejected, coalesce(sum(duplicates), 0) AS duplicates,
               CASE WHEN sum(received) > 0 THEN round(sum(rejected) / sum(received), 4) END AS rejection_rate,
               strftime(timezone('UTC', max(ingested_at)), '%Y-%m-%d %H:%M UTC') AS last_delivery
        FROM ({dataset_sql(paths, 'batches')}) WHERE site_id = $site
        GROUP BY ALL ORDER BY iso_week DESC
    """, {"site": site})
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def dq_summary_html(site: str, rows: list[dict[str, Any]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(k)}</th>" for k in DQ_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{e('' if r[k] is None else str(r[k]))}</td>" for k in DQ_COLUMNS)
                   + "</tr>" for r in rows)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Data quality {e(site)}</title></head>"
            f"<body><h1>Data quality of site {e(site)}</h1><p>Files and rows received per ISO week of "
            f"ingestion, newest first. Rejected rows are on the query list beside this file.</p>"
            f"<table border='1'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>")


def write_site_outbox(root: Path, site: str, study: Study, files: Mapping[str, bytes]) -> list[Path]:
    folder = site_folder(root, site, study)
    written = []
    for name, data in files.items():
        atomic_write_bytes(data, folder / name)
        written.append(folder / name)
    return written


def write_outboxes(paths: Paths, study: Study, query_files: Mapping[str, Mapping[str, bytes]]) -> list[Path]:
    """Every registered site's outbox: its query-list files (given, per site) and its DQ summary."""
    root = outbox_dir(paths, study)
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for site in study.site_ids:
        rows = dq_summary(paths, site)
        files = {**query_files.get(site, {}),
                 "dq_summary.csv": csv_text(rows, DQ_COLUMNS).encode("utf-8"),
                 "dq_summary.html": dq_summary_html(site, rows).encode("utf-8")}
        written += write_site_outbox(root, site, study, files)
    return written
