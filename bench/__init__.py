"""Benchmarks: trialpipe against raw DuckDB on the same data (medians and ratios)."""
