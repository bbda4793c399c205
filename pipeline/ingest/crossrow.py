"""Cross-row rules (DTS §5) as set-based DuckDB SQL over one run's staged rows.

Input, in the scratch connection: `rows` (one per delivered record: `seq`
= processing order, typed fields, `content_hash`), `findings` (seq, rule,
message: the per-row verdicts of the GX suites) and `prior` (the committed
event log). Output: `status` (seq, status ∈ accepted | rejected | duplicate)
and more `findings`.

Order and scope: rows are decided in three stages: enrollments, then the other
base events (symptom_report, assessment, treatment, red_flag, withdrawal), then
corrections and retractions. An enrollment accepted anywhere in the run counts
for `patient_not_enrolled`, and a correction or retraction may target an
event accepted anywhere in the run. Within a stage, "already accepted" means
accepted in an earlier run, an earlier stage, or earlier in processing order.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pandas as pd

from pipeline.read_sql import sql_literal as lit
from pipeline.rules import names
from pipeline.schema import CORRECTABLE_TYPES, RETRACTABLE_TYPES, TYPE_FIELDS

REJECTING = names("row_rejected")
ENROLL, BASE, AMEND = ("enrollment",), ("symptom_report", "assessment", "treatment", "red_flag", "withdrawal"), (
    "correction", "retraction")

#: (frame of correction rows typed as their target's type) -> list of (seq, rule, message)
PayloadChecker = Callable[[pd.DataFrame], list[tuple[int, str, str]]]


def _types(ts: tuple[str, ...]) -> str:
    return "(" + ", ".join(lit(t) for t in ts) + ")"


def _rejecting_sql() -> str:
    return _types(REJECTING)


def setup(con: duckdb.DuckDBPyConnection) -> None:
    """Tables every stage reads: the relevant part of the prior log, and `acc` (accepted so far)."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE acc AS
        SELECT event_id, content_hash, event_type, site_id, patient_id, occurred_at, leg_pain_nrs,
               -1::BIGINT AS seq
        FROM prior p
        WHERE event_id IN (SELECT event_id FROM rows)
           OR event_id IN (SELECT target_event_id FROM rows)
           OR (p.site_id, p.patient_id) IN (SELECT site_id, patient_id FROM rows)
    """)
    con.execute("CREATE OR REPLACE TEMP TABLE status (seq BIGINT, status VARCHAR)")


def _add(con: duckdb.DuckDBPyConnection, select_sql: str) -> None:
    con.execute(f"INSERT INTO findings (seq, rule, message) {select_sql}")


def _stage_rows(types: tuple[str, ...]) -> str:
    return f"SELECT * FROM rows WHERE event_type IN {_types(types)}"


def decide_stage(con: duckdb.DuckDBPyConnection, types: tuple[str, ...],
                 payload_checker: PayloadChecker | None = None) -> None:
    stage = _stage_rows(types)
    # 1. identical to an event accepted before this stage: a no-op duplicate
    con.execute(f"""
        INSERT INTO status SELECT r.seq, 'duplicate' FROM ({stage}) r
        WHERE EXISTS (SELECT 1 FROM acc a WHERE a.event_id = r.event_id AND a.content_hash = r.content_hash)
    """)
    undecided = f"SELECT * FROM ({stage}) WHERE seq NOT IN (SELECT seq FROM status)"
    # 2. the event_id is taken, with other content
    _add(con, f"""
        SELECT r.seq, 'event_id_conflict', 'event_id ' || r.event_id || ' is already accepted with different content'
        FROM ({undecided}) r WHERE r.event_id IN (SELECT event_id FROM acc)
    """)
    # 3. rules that depend on other rows
    if types == ENROLL:
        _add(con, f"""
            SELECT r.seq, 'duplicate_enrollment', 'patient ' || r.patient_id || ' already has an accepted enrollment'
            FROM ({undecided}) r
            WHERE (r.site_id, r.patient_id) IN (SELECT site_id, patient_id FROM acc WHERE event_type = 'enrollment')
        """)
    else:
        _add(con, f"""
            SELECT r.seq, 'patient_not_enrolled',
                   'patient ' || coalesce(r.patient_id, '?') || ' has no accepted enrollment at site '
                   || coalesce(r.site_id, '?')
            FROM ({undecided}) r
            WHERE r.patient_id IS NOT NULL AND r.site_id IS NOT NULL AND (r.site_id, r.patient_id) NOT IN
                  (SELECT site_id, patient_id FROM acc WHERE event_type = 'enrollment')
        """)
    if types == AMEND:
        _target_rules(con, undecided, payload_checker)
    # 4. within the stage, the first clean row of an event_id wins; later ones are duplicates or conflicts
    rejected = f"SELECT seq FROM findings WHERE rule IN {_rejecting_sql()}"
    clean = f"SELECT * FROM ({undecided}) u WHERE seq NOT IN ({rejected})"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE winners AS
        SELECT * FROM ({clean}) QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY seq) = 1
    """)
    con.execute(f"""
        INSERT INTO status SELECT u.seq, 'duplicate' FROM ({undecided}) u JOIN winners w
          ON u.event_id = w.event_id AND u.seq > w.seq AND u.content_hash = w.content_hash
    """)
    _add(con, f"""
        SELECT u.seq, 'event_id_conflict', 'event_id ' || u.event_id || ' is already accepted with different content'
        FROM ({undecided}) u JOIN winners w ON u.event_id = w.event_id AND u.seq > w.seq
         AND u.content_hash <> w.content_hash
        WHERE u.seq NOT IN (SELECT seq FROM status)
    """)
    if types == ENROLL:  # the first enrollment of a patient in the run wins
        _add(con, """
            SELECT seq, 'duplicate_enrollment', 'patient ' || patient_id || ' already has an accepted enrollment'
            FROM winners QUALIFY row_number() OVER (PARTITION BY site_id, patient_id ORDER BY seq) > 1
        """)
    con.execute(f"""
        INSERT INTO status
        SELECT seq, CASE WHEN seq IN (SELECT seq FROM findings WHERE rule IN {_rejecting_sql()})
                         THEN 'rejected' ELSE 'accepted' END
        FROM ({undecided}) WHERE seq NOT IN (SELECT seq FROM status)
    """)
    con.execute(f"""
        INSERT INTO acc SELECT r.event_id, r.content_hash, r.event_type, r.site_id, r.patient_id, r.occurred_at,
                               r.leg_pain_nrs, r.seq
        FROM ({stage}) r JOIN status s ON s.seq = r.seq AND s.status = 'accepted'
    """)


def _target_rules(con: duckdb.DuckDBPyConnection, undecided: str, payload_checker: PayloadChecker | None) -> None:
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE targets AS
        SELECT r.seq, r.event_type, r.site_id, r.patient_id, r.target_event_id,
               t.event_type AS target_type, t.site_id AS target_site, t.patient_id AS target_patient
        FROM ({undecided}) r
        LEFT JOIN (SELECT * FROM acc QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY seq) = 1) t
          ON t.event_id = r.target_event_id
        WHERE r.target_event_id IS NOT NULL
    """)
    _add(con, f"""
        SELECT seq, 'target_unknown', CASE WHEN target_type IS NULL
            THEN 'target_event_id ' || target_event_id || ' is not an accepted event'
            ELSE 'a ' || event_type || ' cannot target a ' || target_type || ' event' END
        FROM targets
        WHERE target_type IS NULL
           OR (event_type = 'correction' AND target_type NOT IN {_types(CORRECTABLE_TYPES)})
           OR (event_type = 'retraction' AND target_type NOT IN {_types(RETRACTABLE_TYPES)})
    """)
    _add(con, """
        SELECT seq, 'target_other_patient',
               'target_event_id ' || target_event_id || ' belongs to another patient or site'
        FROM targets
        WHERE target_type IS NOT NULL
          AND (target_site IS DISTINCT FROM site_id OR target_patient IS DISTINCT FROM patient_id)
    """)
    if payload_checker is None:
        return
    # a correction carries the complete corrected event: validate it as an event of the target's type
    payload = [c for c in TYPE_FIELDS["correction"] if c != "target_event_id"]
    n_assess = " + ".join(f"(r.{c} IS NOT NULL)::INTEGER" for c in TYPE_FIELDS["assessment"])
    frame = con.execute(f"""
        SELECT r.seq AS _row, t.target_type AS event_type, NULL::VARCHAR AS target_event_id,
               {', '.join(f'CAST(r.{c} AS VARCHAR) AS {c}' for c in payload)}, {n_assess} AS _n_assessment
        FROM rows r JOIN targets t ON t.seq = r.seq
        WHERE r.event_type = 'correction' AND t.target_type IN {_types(CORRECTABLE_TYPES)}
    """).df()
    if len(frame):
        for seq, rule, message in payload_checker(frame):
            con.execute("INSERT INTO findings VALUES (?, ?, ?)", [seq, rule, message])


def warnings(con: duckdb.DuckDBPyConnection) -> None:
    """pain_jump and after_withdrawal for the accepted rows of this run."""
    accepted = "SELECT r.* FROM rows r JOIN status s ON s.seq = r.seq AND s.status = 'accepted'"
    _add(con, f"""
        WITH sr AS (
            SELECT seq, site_id, patient_id, occurred_at, leg_pain_nrs FROM acc
            WHERE event_type = 'symptom_report' AND leg_pain_nrs IS NOT NULL
        ), cur AS (
            SELECT * FROM ({accepted}) WHERE event_type = 'symptom_report' AND leg_pain_nrs IS NOT NULL
        ), latest AS (
            SELECT c.seq, c.leg_pain_nrs AS now_pain, arg_max(s.leg_pain_nrs, (s.occurred_at, s.seq)) AS prev_pain
            FROM cur c JOIN sr s ON s.site_id = c.site_id AND s.patient_id = c.patient_id
             AND s.seq < c.seq AND s.occurred_at < c.occurred_at
             AND s.occurred_at >= c.occurred_at - INTERVAL 24 HOUR
            GROUP BY c.seq, c.leg_pain_nrs
        )
        SELECT seq, 'pain_jump', 'leg pain ' || now_pain || ' vs ' || prev_pain || ' within 24 h'
        FROM latest WHERE abs(now_pain - prev_pain) >= 6
    """)
    _add(con, f"""
        SELECT DISTINCT r.seq, 'after_withdrawal', 'occurred after the patient''s withdrawal'
        FROM ({accepted}) r JOIN acc w ON w.event_type = 'withdrawal' AND w.site_id = r.site_id
         AND w.patient_id = r.patient_id AND w.seq < r.seq AND r.occurred_at > w.occurred_at
    """)


def decide(con: duckdb.DuckDBPyConnection, payload_checker: PayloadChecker | None = None) -> None:
    setup(con)
    for types in (ENROLL, BASE, AMEND):
        decide_stage(con, types, payload_checker)
    # rows whose event_type is missing or unknown were rejected by the suites
    con.execute("""
        INSERT INTO status SELECT seq, 'rejected' FROM rows WHERE seq NOT IN (SELECT seq FROM status)
    """)
    warnings(con)
