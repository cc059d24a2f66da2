"""The one table from DSN driver name to source and sink classes (imported on first use, so a
missing optional dependency only matters to the driver that needs it)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .dsn import Dsn, parse_dsn
from .errors import DsnError

if TYPE_CHECKING:
    from .pipeline import Options
    from .sinks.base import Sink
    from .sources.base import Source

SOURCES: dict[str, str] = {
    "csv": "tdetl.sources.csv:CsvSource",
    "local": "tdetl.sources.local:LocalSource",
    "taos": "tdetl.sources.taos:TaosSource",
    "kafka": "tdetl.sources.kafka:KafkaSource",
    "mqtt": "tdetl.sources.mqtt:MqttSource",
    "influxdb": "tdetl.sources.influxdb:InfluxDBSource",
    "opentsdb": "tdetl.sources.opentsdb:OpenTSDBSource",
    "opcua": "tdetl.sources.opcua:OpcUaSource",
    "opc": "tdetl.sources.opcua:OpcUaSource",
}
SINKS: dict[str, str] = {
    "local": "tdetl.sinks.local:LocalSink",
    "csv": "tdetl.sinks.csv:CsvSink",
    "parquet": "tdetl.sinks.parquet:ParquetSink",
    "duckdb": "tdetl.sinks.duckdb:DuckDBSink",
    "taos": "tdetl.sinks.taos:TaosSink",
}


def _load(table: dict[str, str], dsn: Dsn, role: str) -> type:
    target = table.get(dsn.driver)
    if target is None:
        raise DsnError(f"{dsn.masked()}: unknown {role} driver {dsn.driver!r}"
                       f" (available: {', '.join(sorted(table))})")
    module, _, name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except ImportError as e:
        raise DsnError(f"{dsn.masked()}: driver {dsn.driver!r} needs a missing package ({e.name});"
                       f" install tdetl[all]") from None
    if dsn.protocol not in cls.protocols:
        raise DsnError(f"{dsn.masked()}: driver {dsn.driver!r} does not speak {dsn.protocol!r}")
    return cls


def as_dsn(dsn: str | Dsn) -> Dsn:
    return dsn if isinstance(dsn, Dsn) else parse_dsn(dsn)


def open_source(dsn: str | Dsn, options: Options) -> Source:
    d = as_dsn(dsn)
    return _load(SOURCES, d, "source")(d, options)


def open_sink(dsn: str | Dsn, options: Options) -> Sink:
    d = as_dsn(dsn)
    return _load(SINKS, d, "target")(d, options)
