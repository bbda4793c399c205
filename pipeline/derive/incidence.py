"""SAP §6 confidence intervals: finish red_flag_incidence with scipy-backed intervals.

red_flag_incidence.sql leaves a temporary table of counts (red_flag_counts) per stratum × flag
(a few dozen rows); this module pulls it into Python, adds the exact Poisson
interval of the rate and the Wilson interval of the proportion (stats.py), and
writes the final table.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from pipeline.derive.stats import poisson_rate_ci, wilson_ci
from pipeline.derive.tables import create_table

COLUMNS = (
    "stratum_type", "stratum", "flag", "at_risk", "cases", "patient_weeks", "rate_per_100pw", "rate_ci_low",
    "rate_ci_high", "proportion", "proportion_ci_low", "proportion_ci_high",
)

INTERVALS = pa.schema([
    ("stratum_type", pa.string()), ("stratum", pa.string()), ("flag", pa.string()),
    ("rate_ci_low", pa.float64()), ("rate_ci_high", pa.float64()),
    ("proportion_ci_low", pa.float64()), ("proportion_ci_high", pa.float64()),
])


def add_confidence_intervals(con: duckdb.DuckDBPyConnection) -> None:
    counts = con.sql(
        "select stratum_type, stratum, flag, at_risk, cases, patient_weeks from red_flag_counts"
    ).fetchall()
    rows = []
    for stratum_type, stratum, flag, at_risk, cases, patient_weeks in counts:
        rate_low, rate_high = poisson_rate_ci(cases, patient_weeks) if at_risk else (None, None)
        prop_low, prop_high = wilson_ci(cases, at_risk)
        rows.append({
            "stratum_type": stratum_type, "stratum": stratum, "flag": flag,
            "rate_ci_low": rate_low, "rate_ci_high": rate_high,
            "proportion_ci_low": prop_low, "proportion_ci_high": prop_high,
        })
    create_table(con, "red_flag_intervals", INTERVALS, rows, temp=True)
    con.execute(f"""
        create or replace table red_flag_incidence as
        select {", ".join(COLUMNS)}
        from red_flag_counts
        join red_flag_intervals using (stratum_type, stratum, flag)
    """)
