"""``mqtt:`` — MQTT topics through ``--parser``, QoS 1/2 acknowledged once the target holds them."""
