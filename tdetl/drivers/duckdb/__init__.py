"""``duckdb:`` — a DuckDB database file, one table per TDengine table."""
