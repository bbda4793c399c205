"""Build ADSL, ADEFF and ADTTE in a connection that holds a derivation (the export's).

The datasets read the derived tables of interface.md (trajectory, patient_week) and, for
what no derived table carries (age, sex, the recovery instants), the accepted events
already cut at the as-of instant: the same machinery as `trialpipe export`. Each dataset
is a SQL file named after it; this module runs them in order and checks their columns
against variables.csv.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from pipeline.derive.adam.metadata import Dataset, datasets, params
from pipeline.read_sql import load_sql

#: XPT v5 holds at most 200 bytes in a character variable
XPT_MAX_CHAR = 200


class AdamError(OSError):
    """The ADaM datasets cannot be written (an OSError, so the command line reports it in one line)."""


def _sql(name: str) -> str:
    return load_sql("pipeline.derive.adam", f"{name}.sql")


def _order_by(ds: Dataset) -> str:
    return ", ".join(f'"{k}"' for k in ds.keys)


def build_adam(con: duckdb.DuckDBPyConnection, study_id: str) -> dict[str, pa.Table]:
    """ADSL, ADEFF and ADTTE as Arrow tables, rows sorted by their ADaM IG keys.

    `con` holds a derivation (api.derive_in_memory): accepted_events, log_anchors and the macro
    effective_events (SAP §1, defined once there), patients, trajectory, patient_week.
    The temporary tables adam_effective, adsl, adeff and adtte stay in `con`.
    """
    con.execute("set variable adam_studyid = ?", [study_id])
    con.execute("create or replace temp table adam_params (PARAMCD varchar, PARAMN integer, PARAM varchar)")
    con.executemany("insert into adam_params values (?, ?, ?)", [list(p) for p in params()])
    con.execute(f"create or replace temp table adam_effective as {_sql('effective')}")
    tables: dict[str, pa.Table] = {}
    ((previous,),) = con.execute("select current_setting('preserve_insertion_order')").fetchall()
    con.execute("set preserve_insertion_order = true")  # the sorted order must reach the files
    try:
        for ds in datasets():
            name = ds.name.lower()
            con.execute(f"create or replace temp table {name} as {_sql(name)}")
            got = tuple(str(r[0]) for r in con.execute(f"describe {name}").fetchall())
            if got != ds.names:
                raise AssertionError(f"{name}.sql gives {got}, variables.csv says {ds.names}")
            tables[ds.name] = con.sql(f"select * from {name} order by {_order_by(ds)}").to_arrow_table()
    finally:
        con.execute(f"set preserve_insertion_order = {bool(previous)}")
    _check_unique(tables["ADSL"])
    return tables


def _check_unique(adsl: pa.Table) -> None:
    """USUBJID must name one patient: a site id and a patient id with '-' could make two alike."""
    ids = adsl.column("USUBJID").to_pylist()
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise AdamError(f"USUBJID {dup[0]!r} would name two patients (site and patient ids joined by '-')")
