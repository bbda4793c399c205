"""Turn one staged, decided file into a batch: events, quarantine, alerts and its ledger record."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.config import Paths
from pipeline.ingest.stage import StagedFile
from pipeline.read_sql import sql_literal as lit
from pipeline.rules import names
from pipeline.schema import FIELDS, SCHEMA_VERSION
from pipeline.store.alerts import AlertKey, new_alerts_table
from pipeline.store.commit import Batch, data_files
from pipeline.store.files import fsync_file
from pipeline.store.warehouse import QUARANTINE_SCHEMA

WARNINGS = names("warning")
REJECTING = names("row_rejected")
REDACTED = "[redacted by trialpipe: possible PHI]"

#: SAP §6 flag names for the red-flag signals an ingest can see (DTS §5 "Safety first")
RED_FLAG_EVENT_FLAGS = {
    "bladder_dysfunction": "BLADDER", "bowel_dysfunction": "BOWEL", "saddle_anesthesia": "SADDLE",
    "progressive_motor_deficit": "MOTOR", "bilateral_symptoms": "BILATERAL", "other": "OTHER",
}
SYMPTOM_FLAGS = {"bladder_dysfunction": "BLADDER", "bowel_dysfunction": "BOWEL", "saddle_numbness": "SADDLE"}


def _types_list(ts: tuple[str, ...]) -> str:
    return "(" + ", ".join(lit(t) for t in ts) + ")"


def summarise_findings(con: duckdb.DuckDBPyConnection) -> None:
    # a finding reported twice (a type check and its DuckDB-side twin, suites.py `_untyped_check`) is listed once
    rejecting, warning = _types_list(REJECTING), _types_list(WARNINGS)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE verdicts AS
        SELECT seq,
               list(DISTINCT rule ORDER BY rule) FILTER (WHERE rule IN {rejecting}) AS rules,
               list(rule || ': ' || message ORDER BY rule, message) FILTER (WHERE rule IN {rejecting}) AS messages,
               list(DISTINCT rule ORDER BY rule) FILTER (WHERE rule IN {warning}) AS warns
        FROM (SELECT DISTINCT seq, rule, message FROM findings) GROUP BY seq
    """)
    stage_signals(con)


def _file_rows(staged: StagedFile, status: str) -> str:
    return (f"SELECT r.*, v.rules, v.messages, v.warns FROM rows r JOIN status s ON s.seq = r.seq "
            f"LEFT JOIN verdicts v ON v.seq = r.seq WHERE r.file_idx = {staged.file_idx} AND s.status = '{status}'")


def events_sql(staged: StagedFile, batch_id: str, at: datetime) -> str:
    """The accepted events of one file in the stored layout (pipeline.schema.EVENT_SCHEMA)."""
    cols = ", ".join(f.name for f in FIELDS)
    return f"""
        SELECT {cols}, {lit(batch_id)} AS batch_id, {lit(staged.file.relpath)} AS source_file,
               {lit(staged.sha256)} AS source_sha256, _row::BIGINT AS source_row,
               {lit(at.isoformat())}::TIMESTAMPTZ AS ingested_at, content_hash,
               coalesce(warns, []::VARCHAR[]) AS warnings, {SCHEMA_VERSION}::INTEGER AS schema_version
        FROM ({_file_rows(staged, 'accepted')}) ORDER BY source_row
    """


def write_events_file(con: duckdb.DuckDBPyConnection, staged: StagedFile, batch_id: str, at: datetime,
                      tmp: Path) -> int:
    """Stream the accepted events into a Parquet file (never the whole file in memory); returns the count."""
    tmp.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"COPY ({events_sql(staged, batch_id, at)}) TO {lit(str(tmp))} "
                "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)")
    fsync_file(tmp)
    n = con.execute(f"SELECT count(*) FROM read_parquet({lit(str(tmp))})").fetchone()
    return int(n[0]) if n else 0


def _redact(raw: str | None) -> str | None:
    """Keep the record verbatim except a comment that looks like PHI (never stored)."""
    if raw is None:
        return None
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    if isinstance(obj, dict) and "comment" in obj:
        obj["comment"] = REDACTED
        return json.dumps(obj, ensure_ascii=False)
    return raw


def quarantine_table(con: duckdb.DuckDBPyConnection, staged: StagedFile, batch_id: str, at: datetime) -> pa.Table:
    rows = con.execute(f"""
        SELECT _row, event_id, rules, messages, _raw FROM ({_file_rows(staged, 'rejected')}) ORDER BY _row
    """).fetchall()
    out = [{
        "batch_id": batch_id, "site_id": staged.file.site_folder, "source_file": staged.file.relpath,
        "source_sha256": staged.sha256, "source_row": r[0], "event_id": r[1], "rules": r[2] or ["bad_type"],
        "messages": r[3] or [], "raw": _redact(r[4]) if "phi_in_comment" in (r[2] or []) else r[4],
        "ingested_at": at,
    } for r in rows]
    return pa.Table.from_pylist(out, schema=QUARANTINE_SCHEMA)


def keep_rejected_file(paths: Paths, staged: StagedFile) -> str:
    """Keep a file rejected whole in the quarantine store (content-addressed, so reruns add nothing)."""
    ext = staged.fmt or "bin"
    kept = paths.quarantine_dir / "files" / f"{staged.sha256[:32]}.{ext}"
    if not kept.exists():
        kept.parent.mkdir(parents=True, exist_ok=True)
        tmp = kept.with_name(f".{kept.name}.tmp")
        try:
            os.link(staged.file.path, tmp)
        except OSError:
            shutil.copyfile(staged.file.path, tmp)
        os.replace(tmp, kept)
    return str(kept.relative_to(paths.warehouse))


def rejected_file_table(paths: Paths, staged: StagedFile, batch_id: str, at: datetime) -> pa.Table:
    assert staged.rejected is not None
    raw = json.dumps({"kept_file": keep_rejected_file(paths, staged), "delivered_as": staged.file.relpath})
    row = {
        "batch_id": batch_id, "site_id": staged.file.site_folder, "source_file": staged.file.relpath,
        "source_sha256": staged.sha256, "source_row": None, "event_id": None, "rules": [staged.rejected.rule],
        "messages": [staged.rejected.message], "raw": raw, "ingested_at": at,
    }
    return pa.Table.from_pylist([row], schema=QUARANTINE_SCHEMA)


def _clean(expr: str) -> str:
    """Lower case, without leading or trailing white space of any kind (line breaks, tabs, NBSP, ...)."""
    return rf"lower(regexp_replace({expr}, '^[\s\v\pZ]+|[\s\v\pZ]+$', '', 'g'))"


def _lenient(expr: str, exact: tuple[str, ...], clean_set: tuple[str, ...]) -> str:
    """`_clean(expr) IN clean_set`, with the regex only for a text that is not already one of `exact`."""
    return (f"CASE WHEN {expr} IN {_types_list(exact)} THEN {expr} IN {_types_list(clean_set)} "
            f"ELSE {_clean(expr)} IN {_types_list(clean_set)} END")


YES = ("true", "1", "yes", "y")
SIGNAL_TYPES = ("red_flag", "symptom_report", "correction")


def _said_yes(said: str, typed: str) -> str:
    """The record (read from the delivered text, valid or not) says yes for a key (docs §9.4)."""
    # or the field as typed: a JSON Lines record naming the field twice reads true if any copy does
    return f"(coalesce({_lenient(said, ('true', '1', 'false', '0'), YES)}, false) OR coalesce({typed}, false))"


def stage_signals(con: duckdb.DuckDBPyConnection) -> None:
    """`signals` (seq, flag): the red-flag signals of every staged row, valid or not (DTS §5 "Safety first").

    Built once per decision for all files. event_type and flag are read leniently (a rejected
    " red_flag\n" still alerts); a symptom flag is read from the delivered text as well as typed.
    """
    etype = f"CASE WHEN event_type IN {_types_list(SIGNAL_TYPES)} THEN event_type ELSE {_clean('event_type')} END"
    keys = list(SYMPTOM_FLAGS)
    paths = "[" + ", ".join(lit("$." + k) for k in keys) + "]"
    event_flag = " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in RED_FLAG_EVENT_FLAGS.items())
    flag_text = f"CASE WHEN flag IN {_types_list(tuple(RED_FLAG_EVENT_FLAGS))} THEN flag ELSE {_clean('flag')} END"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE signal_candidates AS
        SELECT seq, etype, flag, {', '.join(keys)},
               CASE WHEN etype IN ('symptom_report', 'correction') THEN json_extract_string(_raw, {paths}) END AS said
        FROM (SELECT seq, {etype} AS etype, flag, {', '.join(keys)}, _raw FROM rows)
        WHERE etype IN {_types_list(SIGNAL_TYPES)}
    """)
    parts = [f"""SELECT seq, CASE {flag_text} {event_flag} ELSE 'OTHER' END AS flag FROM signal_candidates
                 WHERE etype = 'red_flag' OR (etype = 'correction' AND flag IS NOT NULL)"""]
    parts += [f"SELECT seq, {lit(flag)} FROM signal_candidates WHERE etype IN ('symptom_report', 'correction') "
              f"AND {_said_yes(f'said[{i + 1}]', key)}" for i, (key, flag) in enumerate(SYMPTOM_FLAGS.items())]
    con.execute(f"CREATE OR REPLACE TEMP TABLE signals AS {' UNION ALL '.join(parts)}")
    con.execute("DROP TABLE signal_candidates")


def signal_rows(con: duckdb.DuckDBPyConnection, staged: StagedFile) -> list[dict[str, Any]]:
    """Red-flag signals of accepted and rejected rows (a rejected row still alerts, unvalidated)."""
    rows = con.execute(f"""
        SELECT r._row, r.event_id, r.patient_id, r.occurred_at, sig.flag, s.status, v.rules, r.event_type
        FROM signals sig JOIN rows r ON r.seq = sig.seq JOIN status s ON s.seq = r.seq
        LEFT JOIN verdicts v ON v.seq = r.seq
        WHERE r.file_idx = {staged.file_idx} AND s.status IN ('accepted', 'rejected')
        ORDER BY r._row, sig.flag
    """).fetchall()
    out = []
    for row, event_id, patient_id, occurred_at, flag, status, rules, event_type in rows:
        validated = status == "accepted"
        where = f"{staged.file.relpath} record {row}"
        msg = (f"{flag} reported in {event_type} ({where})" if validated else
               f"UNVALIDATED: {flag} signal in a rejected record ({where}; rules: {', '.join(rules or [])})"
               " - contact the site today")
        out.append({
            "site_id": staged.file.site_folder, "patient_id": patient_id,
            "event_id": event_id or f"{staged.sha256[:12]}:{row}", "flag": flag, "occurred_at": occurred_at,
            "validated": validated, "message": msg,
        })
    return out


def build_batch(paths: Paths, con: duckdb.DuckDBPyConnection | None, staged: StagedFile, batch_id: str,
                run_id: str, at: datetime, status: str, already_alerted: set[AlertKey]) -> Batch:
    """status: ingested | rejected (whole file) | file_duplicate."""
    batch = Batch(batch_id, staged.file.site_folder, {})
    counts = {"received": staged.received, "accepted": 0, "rejected": 0, "duplicates": 0, "warnings": 0}
    rule_counts: dict[str, int] = {}
    if status == "ingested" and con is not None:
        tmp = data_files(paths, batch)["events"].with_name(f".{batch_id}.parquet.tmp")
        if write_events_file(con, staged, batch_id, at, tmp):
            batch.events_file = tmp
        else:
            tmp.unlink()
        batch.quarantine = quarantine_table(con, staged, batch_id, at)
        alerts = new_alerts_table(signal_rows(con, staged), already_alerted, "ingest", batch_id, at)  # adds keys
        batch.alerts = alerts
        for st, n in con.execute(f"SELECT s.status, count(*) FROM rows r JOIN status s ON s.seq = r.seq "
                                 f"WHERE r.file_idx = {staged.file_idx} GROUP BY ALL").fetchall():
            counts[{"accepted": "accepted", "rejected": "rejected", "duplicate": "duplicates"}[st]] = n
        # rows per rule, as stored: a rejected row's rules as in the quarantine, an accepted event's warnings as
        # in the event log; a warning on a rejected row (e.g. late_entry) is not counted: nothing was stored
        for rule, n in con.execute(f"""
            SELECT rule, count(*) FROM (
                SELECT unnest(CASE WHEN len(rules) > 0 THEN rules ELSE ['bad_type'] END) AS rule
                FROM ({_file_rows(staged, 'rejected')})
                UNION ALL
                SELECT unnest(warns) FROM ({_file_rows(staged, 'accepted')})
            ) GROUP BY ALL""").fetchall():
            rule_counts[rule] = n
        if staged.unknown_columns:
            rule_counts["unknown_column"] = 1
        counts["warnings"] = sum(n for r, n in rule_counts.items() if r in WARNINGS)
    elif status == "rejected":
        assert staged.rejected is not None
        batch.quarantine = rejected_file_table(paths, staged, batch_id, at)
        rule_counts[staged.rejected.rule] = 1
    else:
        rule_counts["file_duplicate"] = 1
    batch.ledger = {
        "batch_id": batch_id, "site_id": staged.file.site_folder, "source_file": staged.file.relpath,
        "source_sha256": staged.sha256, "source_size": staged.file.size, "source_mtime_ns": staged.file.mtime_ns,
        "format": staged.fmt, "status": status, "run_id": run_id,
        "file_rules": [staged.rejected.rule] if staged.rejected else (["file_duplicate"] if status == "file_duplicate"
                                                                     else []),
        **counts, "unknown_columns": staged.unknown_columns, "rule_counts": rule_counts,
        "message": staged.rejected.message if staged.rejected else None, "ingested_at": at,
    }
    return batch

