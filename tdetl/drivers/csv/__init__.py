"""``csv:`` — CSV files in (through ``--parser``) and out."""
