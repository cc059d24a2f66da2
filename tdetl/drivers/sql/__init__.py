"""SQL databases as sources (PostgreSQL, MySQL/MariaDB): a SQL template read window by window."""
