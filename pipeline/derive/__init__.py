"""SAP derivations: projections of the append-only event log (see docs/derivations.md).

`api` holds what the command line calls (derive, export); `lock` the data lock;
`build` runs the SQL files under `sql/` in order.
"""
