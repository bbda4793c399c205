"""Write a few rows computed in Python (intervals, curves) as a stored table.

The columns are passed as list parameters and unnested side by side: registering an Arrow table
would import pandas (seconds) in every derivation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb
import pyarrow as pa

DUCK_TYPES = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.float64(): "DOUBLE"}


def create_table(con: duckdb.DuckDBPyConnection, name: str, schema: pa.Schema,
                 rows: Sequence[Mapping[str, object]], temp: bool = False) -> None:
    """CREATE OR REPLACE (TEMP) TABLE name with `schema`'s columns, filled with `rows`."""
    columns = ", ".join(f"unnest(?::{DUCK_TYPES[f.type]}[]) as {f.name}" for f in schema)
    kind = "temp table" if temp else "table"
    values = [[r.get(f.name) for r in rows] for f in schema]
    if not rows:
        con.execute(f"create or replace {kind} {name} as select {columns} limit 0", [[] for _ in schema])
        return
    con.execute(f"create or replace {kind} {name} as select {columns}", values)
