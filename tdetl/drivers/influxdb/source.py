"""InfluxDB as a source (``influxdb+http(s)://host:8086/?version=...&bucket=...&beginTime=...``).

``version=1.x`` reads InfluxQL over HTTP (``username``/``password``, ``bucket=db[/rp]``);
``version=2.x`` reads Flux through influxdb-client (``orgId``, ``token``). Either way each measurement
is a partition (``--jobs`` reads several at once; on a cluster, with ``endTime``, each span of
windows is) read in ``readWindow`` windows, oldest first, a window's end being the resume position;
without ``endTime`` it keeps polling.

Measurement -> super table; tag keys -> VARCHAR tags; fields -> columns typed as InfluxDB types them
(a field typed differently across shards is an error naming it, or text with field_conflict=varchar);
one child table per series, ``t_<hash of the series key>`` or ``tbname={tag}...``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Protocol

import polars as pl

from ...capabilities import SourceCapabilities
from ...dsn import Dsn
from ...errors import DsnError, SourceError
from ...model import Catalog, Column, SuperTable, TableBatch
from ...options import Options
from ...params import DATABASE, TIME_RANGE, Param, Spec
from ...quality import Rejects
from ...source import Source, ending_at
from ...types import TDType
from ..common.series import TimeRange, child_name, series_batch, series_key, stable_name

FIELD_TYPES = {"float": "DOUBLE", "integer": "BIGINT", "unsigned": "BIGINT UNSIGNED", "string": "VARCHAR",
               "boolean": "BOOL"}


class Reader(Protocol):
    def measurements(self, begin: int, stop: int) -> list[str]: ...

    def describe(self, m: str, begin: int, stop: int) -> tuple[list[str], list[tuple[str, str]]]: ...

    def window(self, m: str, tags: list[str], fields: list[tuple[str, TDType]], lo: int, hi: int
               ) -> Iterator[tuple[dict[str, str | None], pl.DataFrame]]: ...

    def close(self) -> None: ...


class InfluxDBSource(Source):
    capabilities = SourceCapabilities(partitions="windows")  # measurements; on a cluster spans of them
    requires: ClassVar[dict[str, str]] = {"influxdb_client": "influxdb"}  # module -> the extra that installs it
    protocols = ("http", "https")
    spec = Spec(
        Param("version", "text", None, "required: 1.x (InfluxQL over /query) or 2.x (Flux)"),
        Param("bucket", "text", None, "required: the bucket (1.x: the database, optionally db/rp)"),
        Param("username", "text", None, "1.x user (or the DSN's user)"),
        Param("password", "text", None, "1.x password (or the DSN's)", secret=True),
        Param("orgId", "text", None, "2.x organisation (required there)"),
        Param("token", "text", None, "2.x token (required there)", secret=True),
        Param("measurements", "list", help="measurements to read (default all)"),
        *TIME_RANGE,
        Param("field_conflict", "choice", "error", "a field typed differently across shards or series",
              choices=("error", "varchar")),
        Param("chunk_size", "int", 10_000, "1.x: rows per chunk of the chunked answer", minimum=1),
        Param("request_timeout", "duration", 60.0, "2.x: HTTP request timeout"),
        DATABASE)

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        where = self.where = dsn.masked()
        cfg = self.config
        version = cfg["version"] or ""
        if not version:
            raise DsnError(f"{where}: version is required (1.x or 2.x, e.g. version=1.7)")
        bucket = cfg["bucket"] or ""
        if not bucket:
            raise DsnError(f"{where}: bucket is required (for 1.x the database, optionally db/rp)")
        self.measurements = list(cfg["measurements"])
        self.range = TimeRange(cfg, where)
        self.tbname = cfg["tbname"]
        self.conflict = cfg["field_conflict"]
        self.database = cfg["database"]
        scheme = "https" if dsn.protocol == "https" else "http"
        base = f"{scheme}://{dsn.host or 'localhost'}:{dsn.port or 8086}"
        self.reader: Reader
        if version.startswith("1"):
            from .influxql import InfluxQL

            self.reader = InfluxQL(base, bucket, cfg["username"] or dsn.user, cfg["password"] or dsn.password,
                                   cfg["chunk_size"], where)
        elif version.startswith("2"):
            for key in ("orgId", "token"):
                if not cfg[key]:
                    raise DsnError(f"{where}: {key} is required for InfluxDB 2.x")
            from .flux import Flux

            self.reader = Flux(base, bucket, cfg["orgId"], cfg["token"], cfg["request_timeout"], where)
        else:
            raise DsnError(f"{where}: version={version!r} must be 1.x or 2.x (e.g. 1.7, 2.7)")
        self._schema: dict[str, tuple[list[str], list[tuple[str, TDType]]]] = {}
        self._names: list[str] | None = None

    def _measurements(self) -> list[str]:
        if self._names is None:
            found = self.reader.measurements(self.range.begin, self.range.stop)
            self._names = self.measurements or found
        return self._names

    def _describe(self, m: str) -> tuple[list[str], list[tuple[str, TDType]]]:
        if m not in self._schema:
            tags, pairs = self.reader.describe(m, self.range.begin, self.range.stop)
            kinds: dict[str, str] = {}
            for key, kind in pairs:
                if key in kinds and kinds[key] != kind:
                    if self.conflict == "error":
                        raise SourceError(f"{self.where}: measurement {m!r} field {key!r} is {kinds[key]} in"
                                          f" some shards and {kind} in others; add field_conflict=varchar"
                                          f" to read it as text")
                    kind = "string"
                kinds[key] = kind
            if not kinds:
                raise SourceError(f"{self.where}: measurement {m!r} not found in bucket {self.config['bucket']!r}")
            self._schema[m] = (tags, [(k, TDType(FIELD_TYPES.get(kind, "VARCHAR"))) for k, kind in kinds.items()])
        return self._schema[m]

    def catalog(self) -> Catalog:
        cat = Catalog()
        for m in self._measurements():
            tags, fields = self._describe(m)
            cat.add_stable(SuperTable(self.database, stable_name(m), (Column("ts", TDType("TIMESTAMP")),
                                                          *(Column(f, t) for f, t in fields)),
                                      tuple(Column(t, TDType("VARCHAR")) for t in tags), "ns"))
        return cat

    def partitions(self) -> list[str]:
        return self.range.partitions(self._measurements(), False)

    def spread_partitions(self) -> list[str]:
        return self.range.partitions(self._measurements(), True)

    def read(self, partition: str, start: Any = None) -> Iterator[TableBatch]:
        m, span = self.range.span_of(partition)
        tags, fields = self._describe(m)
        for lo, hi in self.range.windows(start, span):
            batches = (series_batch(stable_name(m), self.database, fields, tags, tagvals, data,
                                    child_name(series_key(m, tagvals), tagvals, self.tbname, self.where), "ns",
                                    partition)
                       for tagvals, data in self.reader.window(m, tags, fields, lo, hi))
            yield from ending_at(batches, partition, hi, self.range.saw_data)

    def close(self) -> None:
        self.reader.close()
