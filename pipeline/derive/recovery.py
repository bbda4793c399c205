"""SAP §7 time to recovery: Kaplan–Meier per arm and the log-rank test (stats.py).

recovery_times.sql leaves one row per patient (arm, time in weeks, recovered), kept
as the summary derive_state.recovery_times; this module pulls those few thousand
rows into Python, fits the curves and writes `recovery_km` and `recovery_summary`.
"""

from __future__ import annotations

from collections import defaultdict

import duckdb
import pyarrow as pa

from pipeline.derive.stats import KmStep, kaplan_meier, logrank_p, median_time, survival_at
from pipeline.derive.tables import create_table

#: weeks at which the recovered proportion is reported
REPORT_WEEKS = (2, 4, 8, 12, 26, 52)

KM_SCHEMA = pa.schema([
    ("arm", pa.string()), ("time_weeks", pa.float64()), ("at_risk", pa.int64()), ("events", pa.int64()),
    ("censored", pa.int64()), ("survival", pa.float64()),
])
SUMMARY_SCHEMA = pa.schema(
    [("arm", pa.string()), ("n", pa.int64()), ("events", pa.int64()), ("median_weeks", pa.float64())]
    + [(f"recovered_w{w}", pa.float64()) for w in REPORT_WEEKS]
    + [("logrank_p", pa.float64())]
)


def build_recovery_tables(con: duckdb.DuckDBPyConnection) -> None:
    arms = [a for (a,) in con.sql("select arm from study_arms").fetchall()]
    times = con.sql(
        "select arm, time_weeks, recovered from derive_state.recovery_times "
        "order by arm, time_weeks, recovered, site_id, patient_id"
    ).fetchall()
    by_arm: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for arm, time_weeks, recovered in times:
        by_arm[arm].append((float(time_weeks), bool(recovered)))
    arms += sorted(a for a in by_arm if a not in arms)  # arms outside the configuration, if any

    with_patients = [a for a in arms if by_arm[a]]
    p_value = None
    if sum(e for a in with_patients for _, e in by_arm[a]) > 0:
        p_value = logrank_p(
            [t for a in with_patients for t, _ in by_arm[a]],
            [a for a in with_patients for _ in by_arm[a]],
            [e for a in with_patients for _, e in by_arm[a]],
        )

    km_rows: list[dict[str, object]] = []
    summary_rows: list[dict[str, object]] = []
    for arm in arms:
        patients = by_arm[arm]
        steps = kaplan_meier([t for t, _ in patients], [e for _, e in patients])
        km_rows += [{"arm": arm, "time_weeks": s.time, "at_risk": s.at_risk, "events": s.events,
                     "censored": s.censored, "survival": s.survival} for s in steps]
        summary_rows.append(_summary(arm, patients, steps, p_value))

    create_table(con, "recovery_km", KM_SCHEMA, km_rows)
    create_table(con, "recovery_summary", SUMMARY_SCHEMA, summary_rows)


def _summary(arm: str, patients: list[tuple[float, bool]], steps: list[KmStep], p: float | None) -> dict[str, object]:
    row: dict[str, object] = {
        "arm": arm, "n": len(patients), "events": sum(1 for _, e in patients if e),
        "median_weeks": median_time(steps), "logrank_p": p,
    }
    for week in REPORT_WEEKS:
        s = survival_at(steps, float(week))
        row[f"recovered_w{week}"] = None if s is None else float(1 - s)
    return row
