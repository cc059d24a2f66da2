"""``influxdb:`` — InfluxDB 1.x (InfluxQL) and 2.x (Flux) series, read window by window."""
