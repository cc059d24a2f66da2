"""``kafka:`` — Kafka topics through ``--parser``, offsets committed once the target holds them."""
