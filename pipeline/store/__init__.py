"""Storage: the append-only Parquet log, its ledger, and the DuckDB warehouse."""
