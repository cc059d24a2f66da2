"""``opentsdb:`` — OpenTSDB metrics, read window by window over its HTTP API."""
