"""Cross-row rules (DTS §5) as set-based DuckDB SQL over one run's staged rows.

Input, in the scratch connection: `rows` (one per delivered record: `seq`
= processing order, typed fields, `content_hash`), `correction_text` (the
delivered text of the corrections' payload fields, by seq), `findings` (seq,
rule, message: the per-row verdicts of the GX suites) and `prior` (the
committed event log). Output: `status` (seq, status ∈ accepted | rejected | duplicate)
and more `findings`.

Order and scope: rows are decided in three stages: enrollments, then the other
base events (symptom_report, assessment, treatment, red_flag, withdrawal), then
corrections and retractions. An enrollment accepted anywhere in the run counts
for `patient_not_enrolled`, and a correction or retraction may target an
event accepted anywhere in the run. Within a stage, "already accepted" means
accepted in an earlier run, an earlier stage, or earlier in processing order.
A row that breaks a rule is rejected, never a duplicate, even when its content
equals an accepted event's (a row naming another site is a site_mismatch).
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pandas as pd
import pyarrow as pa

from pipeline.read_sql import sql_literal as lit
from pipeline.rules import names
from pipeline.schema import CORRECTABLE_TYPES, CORRECTION_PAYLOAD, RETRACTABLE_TYPES, TYPE_FIELDS

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
    con.execute("CREATE OR REPLACE TEMP TABLE run_patients AS SELECT DISTINCT site_id, patient_id FROM rows")
    con.execute("""CREATE OR REPLACE TEMP TABLE run_ids AS
                   SELECT event_id FROM rows
                   UNION SELECT target_event_id FROM rows WHERE target_event_id IS NOT NULL""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE acc AS
        SELECT p.event_id, p.content_hash, p.event_type, p.site_id, p.patient_id, p.occurred_at, p.leg_pain_nrs,
               -1::BIGINT AS seq
        FROM prior p SEMI JOIN run_ids i ON i.event_id = p.event_id
        UNION
        SELECT p.event_id, p.content_hash, p.event_type, p.site_id, p.patient_id, p.occurred_at, p.leg_pain_nrs,
               -1::BIGINT AS seq
        FROM prior p SEMI JOIN run_patients r ON r.site_id = p.site_id AND r.patient_id = p.patient_id
    """)
    con.execute("CREATE OR REPLACE TEMP TABLE status (seq BIGINT, status VARCHAR)")
    _refresh_bad(con)  # the rows the suites rejected


PAIN_JUMP_ROWS = 1_000_000  # rows of the accepted log per pain_jump partition


def _add(con: duckdb.DuckDBPyConnection, select_sql: str) -> None:
    con.execute(f"INSERT INTO findings (seq, rule, message) {select_sql}")


def insert_findings(con: duckdb.DuckDBPyConnection, found: list[tuple[int, str, str]]) -> None:
    """Append (seq, rule, message) rows to `findings` in one statement (`executemany` costs ~ms a row)."""
    if not found:
        return
    seqs, rules, messages = zip(*found, strict=True)
    con.register("new_findings", pa.table({"seq": pa.array(seqs, pa.int64()), "rule": pa.array(rules, pa.string()),
                                           "message": pa.array(messages, pa.string())}))
    try:
        con.execute("INSERT INTO findings (seq, rule, message) SELECT seq, rule, message FROM new_findings")
    finally:
        con.unregister("new_findings")


def _refresh_bad(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE bad AS "
                f"SELECT DISTINCT seq FROM findings WHERE rule IN {_rejecting_sql()}")


def decide_stage(con: duckdb.DuckDBPyConnection, types: tuple[str, ...],
                 payload_checker: PayloadChecker | None = None) -> None:
    con.execute(f"""CREATE OR REPLACE TEMP TABLE st AS
                    SELECT seq, event_id, event_type, site_id, patient_id, content_hash, target_event_id
                    FROM rows WHERE event_type IN {_types(types)}""")
    # 1. identical to an event accepted before this stage: a no-op duplicate, unless the row itself breaks a
    #    rule (a row naming another site is a site_mismatch and a security event, not a duplicate); `bad` is
    #    current here: setup() and the end of every stage refresh it
    con.execute("""CREATE OR REPLACE TEMP TABLE dup AS
                   SELECT st.seq FROM st
                   SEMI JOIN acc a ON a.event_id = st.event_id AND a.content_hash = st.content_hash
                   ANTI JOIN bad ON bad.seq = st.seq""")
    con.execute("INSERT INTO status SELECT seq, 'duplicate' FROM dup")
    con.execute("CREATE OR REPLACE TEMP TABLE und AS SELECT * FROM st ANTI JOIN dup ON dup.seq = st.seq")
    # 2. the event_id is taken, with other content
    _add(con, """
        SELECT u.seq, 'event_id_conflict', 'event_id ' || u.event_id || ' is already accepted with different content'
        FROM und u SEMI JOIN acc a ON a.event_id = u.event_id
        ANTI JOIN acc same ON same.event_id = u.event_id AND same.content_hash = u.content_hash
    """)  # a copy that is not a duplicate only because it breaks a rule has no *different* content
    # 3. rules that depend on other rows
    con.execute("""CREATE OR REPLACE TEMP TABLE enrolled AS
                   SELECT DISTINCT site_id, patient_id FROM acc WHERE event_type = 'enrollment'""")
    if types == ENROLL:
        _add(con, """
            SELECT u.seq, 'duplicate_enrollment', 'patient ' || u.patient_id || ' already has an accepted enrollment'
            FROM und u SEMI JOIN enrolled e ON e.site_id = u.site_id AND e.patient_id = u.patient_id
            WHERE u.seq NOT IN (SELECT seq FROM findings WHERE rule = 'site_mismatch')
        """)
    else:
        _add(con, """
            SELECT u.seq, 'patient_not_enrolled',
                   'patient ' || u.patient_id || ' has no accepted enrollment at site ' || u.site_id
            FROM und u ANTI JOIN enrolled e ON e.site_id = u.site_id AND e.patient_id = u.patient_id
            WHERE u.patient_id IS NOT NULL AND u.site_id IS NOT NULL
              AND u.seq NOT IN (SELECT seq FROM findings WHERE rule = 'site_mismatch')
        """)  # a row naming another site is rejected as site_mismatch; its claim is not looked up
    if types == AMEND:
        _target_rules(con, payload_checker)
    # 4. within the stage, the first clean row of an event_id wins; later clean copies are duplicates, later
    #    rows with other content conflicts (a copy that breaks a rule is rejected, as in 1.)
    _refresh_bad(con)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE winners AS
        SELECT * FROM (SELECT * FROM und ANTI JOIN bad ON bad.seq = und.seq)
        QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY seq) = 1
    """)
    con.execute("""
        INSERT INTO status SELECT u.seq, 'duplicate' FROM und u JOIN winners w
          ON u.event_id = w.event_id AND u.seq > w.seq AND u.content_hash = w.content_hash
        ANTI JOIN bad ON bad.seq = u.seq
    """)
    _add(con, """
        SELECT u.seq, 'event_id_conflict', 'event_id ' || u.event_id || ' is already accepted with different content'
        FROM und u JOIN winners w ON u.event_id = w.event_id AND u.seq > w.seq AND u.content_hash <> w.content_hash
    """)
    if types == ENROLL:  # the first enrollment of a patient in the run wins
        _add(con, """
            SELECT seq, 'duplicate_enrollment', 'patient ' || patient_id || ' already has an accepted enrollment'
            FROM winners QUALIFY row_number() OVER (PARTITION BY site_id, patient_id ORDER BY seq) > 1
        """)
    _refresh_bad(con)
    con.execute("""
        INSERT INTO status
        SELECT u.seq, CASE WHEN b.seq IS NULL THEN 'accepted' ELSE 'rejected' END
        FROM und u LEFT JOIN bad b ON b.seq = u.seq ANTI JOIN status s ON s.seq = u.seq
    """)
    con.execute("""
        INSERT INTO acc SELECT r.event_id, r.content_hash, r.event_type, r.site_id, r.patient_id, r.occurred_at,
                               r.leg_pain_nrs, r.seq
        FROM rows r JOIN st ON st.seq = r.seq JOIN status s ON s.seq = r.seq AND s.status = 'accepted'
    """)


def _target_rules(con: duckdb.DuckDBPyConnection, payload_checker: PayloadChecker | None) -> None:
    con.execute("""
        CREATE OR REPLACE TEMP TABLE targets AS
        SELECT r.seq, r.event_type, r.site_id, r.patient_id, r.target_event_id,
               t.event_type AS target_type, t.site_id AS target_site, t.patient_id AS target_patient
        FROM und r
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
    # a correction carries the complete corrected event: validate it as an event of the target's type, from the
    # text the site sent (`correction_text`), so that it gets exactly the findings of a plain row of that type
    # with the same text (a value that failed typing is still present: field_not_allowed, not missing_required)
    n_assess = " + ".join(f"(p.{c} IS NOT NULL)::INTEGER" for c in TYPE_FIELDS["assessment"])
    frame = con.execute(f"""
        SELECT t.seq AS _row, t.target_type AS event_type, NULL::VARCHAR AS target_event_id,
               {', '.join(f'p.{c}' for c in CORRECTION_PAYLOAD)}, {n_assess} AS _n_assessment
        FROM targets t JOIN correction_text p ON p.seq = t.seq
        WHERE t.event_type = 'correction' AND t.target_type IN {_types(CORRECTABLE_TYPES)}
    """).df()
    if len(frame):
        insert_findings(con, payload_checker(frame))


def warnings(con: duckdb.DuckDBPyConnection) -> None:
    """pain_jump and after_withdrawal for the accepted rows of this run."""
    accepted = "SELECT r.* FROM rows r JOIN status s ON s.seq = r.seq AND s.status = 'accepted'"
    # a report's candidates occurred in the 24 h before it, so on its UTC day or the day before: joining on
    # (patient, day) keeps the join linear (a plain patient join pairs every two diaries of a patient); patients
    # are taken in hash partitions of about PAIN_JUMP_ROWS rows so that the join fits the scratch memory limit
    day = "floor(epoch_us(occurred_at) / 86400000000.0)::BIGINT"
    ((n_rows,),) = con.execute("SELECT count(*) FROM acc").fetchall()
    parts = max(1, -(-int(n_rows) // PAIN_JUMP_ROWS))
    for part in range(parts):
        mine = f"hash(site_id, patient_id) % {parts} = {part}"
        _add(con, f"""
            WITH sr AS (
                SELECT seq, site_id, patient_id, occurred_at, leg_pain_nrs, {day} AS day FROM acc
                WHERE event_type = 'symptom_report' AND leg_pain_nrs IS NOT NULL AND {mine}
            ), cur AS (
                SELECT seq, site_id, patient_id, occurred_at, leg_pain_nrs, unnest([{day}, {day} - 1]) AS day
                FROM ({accepted}) WHERE event_type = 'symptom_report' AND leg_pain_nrs IS NOT NULL AND {mine}
            ), latest AS (
                SELECT c.seq, any_value(c.leg_pain_nrs) AS now_pain,
                       arg_max(s.leg_pain_nrs, (s.occurred_at, s.seq)) AS prev_pain
                FROM cur c JOIN sr s ON s.site_id = c.site_id AND s.patient_id = c.patient_id AND s.day = c.day
                 AND s.seq < c.seq AND s.occurred_at < c.occurred_at
                 AND s.occurred_at >= c.occurred_at - INTERVAL 24 HOUR
                GROUP BY c.seq
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
    con.execute("INSERT INTO status SELECT r.seq, 'rejected' FROM rows r ANTI JOIN status s ON s.seq = r.seq")
    warnings(con)
