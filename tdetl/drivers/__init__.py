"""The one table from DSN driver name to source and sink classes (imported on first use, so a
missing optional dependency only matters to the driver that needs it)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..dsn import Dsn, parse_dsn
from ..errors import DsnError
from ..quality import Rejects

if TYPE_CHECKING:
    from ..options import Options
    from ..sink import Sink
    from ..source import Source

SOURCES: dict[str, str] = {
    "csv": "tdetl.drivers.csv.source:CsvSource",
    "parquet": "tdetl.drivers.parquet.source:ParquetSource",
    "taosdump": "tdetl.drivers.taosdump.source:TaosdumpSource",
    "orc": "tdetl.drivers.orc.source:OrcSource",
    "local": "tdetl.drivers.local.source:LocalSource",
    "taos": "tdetl.drivers.taos.source:TaosSource",
    "tmq": "tdetl.drivers.tmq.source:TmqSource",
    "kafka": "tdetl.drivers.kafka.source:KafkaSource",
    "mqtt": "tdetl.drivers.mqtt.source:MqttSource",
    "influxdb": "tdetl.drivers.influxdb.source:InfluxDBSource",
    "opentsdb": "tdetl.drivers.opentsdb.source:OpenTSDBSource",
    "opcua": "tdetl.drivers.opcua.source:OpcUaSource",
    "opc": "tdetl.drivers.opcua.source:OpcUaSource",
    "postgres": "tdetl.drivers.sql.postgres:PostgresSource",
    "postgresql": "tdetl.drivers.sql.postgres:PostgresSource",
    "mysql": "tdetl.drivers.sql.mysql:MySqlSource",
    "sparkplugb": "tdetl.drivers.mqtt.sparkplug.source:SparkplugSource",
    "memory": "tdetl.drivers.memory.source:MemorySource",
}
SINKS: dict[str, str] = {
    "local": "tdetl.drivers.local.sink:LocalSink",
    "csv": "tdetl.drivers.csv.sink:CsvSink",
    "parquet": "tdetl.drivers.parquet.sink:ParquetSink",
    "duckdb": "tdetl.drivers.duckdb.sink:DuckDBSink",
    "taos": "tdetl.drivers.taos.sink:TaosSink",
    "mqtt": "tdetl.drivers.mqtt.sink:MqttSink",
    "kafka": "tdetl.drivers.kafka.sink:KafkaSink",
}


def _load(table: dict[str, str], dsn: Dsn, role: str) -> type:
    try:
        cls = driver_class(dsn.driver, "source" if table is SOURCES else "target")
    except DsnError as e:
        raise DsnError(f"{dsn.masked()}: {e}") from None
    if cls is None:
        raise DsnError(f"{dsn.masked()}: unknown {role} driver {dsn.driver!r}"
                       f" (available: {', '.join(sorted(table))})")
    if dsn.protocol not in cls.protocols:
        raise DsnError(f"{dsn.masked()}: driver {dsn.driver!r} does not speak {dsn.protocol!r}")
    for module, extra in cls.requires.items():  # before the run touches anything, not halfway through it
        try:
            importlib.import_module(module)
        except ImportError:
            raise DsnError(f"{dsn.masked()}: the {dsn.driver} driver needs the {extra} extra, which is not installed"
                           f" ({module} is missing): pip install 'tdetl[{extra}]'") from None
    return cls


def as_dsn(dsn: str | Dsn) -> Dsn:
    return dsn if isinstance(dsn, Dsn) else parse_dsn(dsn)


def open_source(dsn: str | Dsn, options: Options, rejects: Rejects | None = None) -> Source:
    d = as_dsn(dsn)
    return _load(SOURCES, d, "source")(d, options, rejects)  # type: ignore[no-any-return]


def open_sink(dsn: str | Dsn, options: Options, rejects: Rejects | None = None) -> Sink:
    d = as_dsn(dsn)
    return _load(SINKS, d, "target")(d, options, rejects)  # type: ignore[no-any-return]


def open_ends(source: str | Dsn, target: str | Dsn, options: Options) -> tuple[Source, Sink]:
    """Both ends of a run, with one ledger of what their records met handed to both (the source's
    defaults for the situations: a TDengine source carries schema changes along); the source is
    closed again when the target cannot be opened."""
    s, t = as_dsn(source), as_dsn(target)
    cls = _load(SOURCES, s, "source")
    ledger = Rejects(options.on_error, options.on, cls.quality_defaults)
    src = cls(s, options, ledger)
    try:
        return src, open_sink(t, options, ledger)
    except BaseException:
        src.close()
        raise


def driver_class(name: str, role: str) -> type | None:
    """The source or sink class of a driver (None when it has no such role)."""
    target = (SOURCES if role == "source" else SINKS).get(name)
    if target is None:
        return None
    module, _, cls = target.partition(":")
    try:
        return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]
    except ImportError as e:
        raise DsnError(f"driver {name!r} needs a missing package ({e.name}); install tdetl[all]") from None


def _default(value: object) -> str:
    if value is None or value == ():
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}s"
    return str(value)


def describe_drivers(name: str | None = None) -> str:
    """``tdetl drivers``: every driver with its roles; with a name, its parameters from its spec."""
    if name is None:
        names = sorted(set(SOURCES) | set(SINKS))
        w = max(len(n) for n in names)
        lines = [f"{'driver':<{w}} source  target  protocols"]
        for d in names:
            protos = set()
            for role in ("source", "target"):
                cls = driver_class(d, role)
                protos |= {p or "-" for p in (cls.protocols if cls else ())}
            lines.append(f"{d:<{w}} {'yes' if d in SOURCES else '-':<7} {'yes' if d in SINKS else '-':<7}"
                         f" {', '.join(sorted(protos))}")
        return "\n".join([*lines, "", "tdetl drivers <name> lists a driver's parameters."])
    if name not in SOURCES and name not in SINKS:
        raise DsnError(f"unknown driver {name!r} (available: {', '.join(sorted(set(SOURCES) | set(SINKS)))})")
    out = []
    for role in ("source", "target"):
        cls = driver_class(name, role)
        if cls is None:
            continue
        out.append(f"{name} as a {role} ({', '.join(p or name for p in cls.protocols)}):")
        out.append(f"  {cls.capabilities.described()}")
        rows = [(p.name + "".join(f", {a}" for a in p.aliases), p.form, _default(p.default),
                 p.help + (" (secret)" if p.secret else "")) for p in cls.spec]
        if not rows:
            out.append("  no parameters")
        widths = [max(len(r[i]) for r in rows) for i in range(3)] if rows else []
        for r in rows:
            out.append("  " + "  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
        out.append("")
    return "\n".join(out).rstrip()
