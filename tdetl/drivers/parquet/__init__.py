"""``parquet:`` — one Parquet file per table."""
