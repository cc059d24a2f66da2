"""In-test servers that follow a real protocol where only the protocol can be exercised (TDengine 2.x REST,
InfluxDB 2.x, OpenTSDB, a recorded taosAdapter WebSocket session)."""
