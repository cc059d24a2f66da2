"""What the MQTT and Kafka publishers share: batches rendered into messages, vectorised in Polars.

A topic (and a Kafka key) comes from a template over ``{db}``, ``{stable}``, ``{tbname}``, tags and
columns, so rows of one batch may fan out to several topics. ``format=json`` makes one JSON object
per row (``tbname``, tags, columns), ``json-batch`` one JSON array per topic and batch, ``arrow``
one Arrow IPC stream per topic and batch (types kept). ``ts_format=rfc3339`` (UTC, with the table's
precision) or ``epoch`` (an integer in the table's precision) for JSON.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from ...dsn import Dsn
from ...errors import ConfigError, DsnError
from ...model import TableBatch, wide
from ...options import Options
from ...params import Param
from ...quality import Rejects
from ...sink import Sink

_FIELD = re.compile(r"\{([^{}]+)\}")
_RFC3339 = {"ms": "%Y-%m-%dT%H:%M:%S%.3fZ", "us": "%Y-%m-%dT%H:%M:%S%.6fZ", "ns": "%Y-%m-%dT%H:%M:%S%.9fZ"}
FORMATS = ("json", "json-batch", "arrow")

PUBLISH = (
    Param("topic", "text", None, "topic template, e.g. plant/{stable}/{tbname} ({db}, {stable}, {tbname}, tags,"
                                 " columns)"),
    Param("format", "choice", "json", "json: a message per row; json-batch: a JSON array per topic and batch;"
                                      " arrow: an Arrow IPC stream per topic and batch", choices=FORMATS),
    Param("ts_format", "choice", "rfc3339", "timestamps in JSON: RFC 3339 (UTC) or epoch in the table's"
                                            " precision", choices=("rfc3339", "epoch")),
)


@dataclass(frozen=True)
class Message:
    topic: str
    key: bytes | None
    payload: bytes
    rows: int


class Renderer:
    def __init__(self, topic: str | None, key: str | None, fmt: str, ts_format: str, where: str) -> None:
        if not topic:
            raise ConfigError(f"{where}: name where to publish: topic=<template>,"
                              " e.g. topic=plant/{stable}/{tbname}")
        self.topic, self.key, self.fmt, self.ts_format, self.where = topic, key, fmt, ts_format, where

    def _template(self, tpl: str, frame: pl.DataFrame, batch: TableBatch) -> pl.Expr:
        fixed = {"db": batch.spec.database or "", "stable": batch.spec.stable or batch.spec.name}
        exprs: list[pl.Expr] = []
        for name in _FIELD.findall(tpl):
            if name in frame.columns:
                exprs.append(pl.col(name).cast(pl.String).fill_null(""))
            elif name in fixed:
                exprs.append(pl.lit(fixed[name]))
            else:
                raise ConfigError(f"{self.where}: template {tpl!r} names {name!r}, which table"
                                  f" {batch.spec.name!r} does not have (it has db, stable, {', '.join(frame.columns)})")
        if not exprs:
            return pl.lit(tpl)
        return pl.format(_FIELD.sub("{}", tpl.replace("{}", "")), *exprs)

    def messages(self, batch: TableBatch) -> Iterator[Message]:
        if not batch.num_rows:
            return
        table = wide(batch)
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        keys = [self._template(self.topic, frame, batch).alias("__topic")]
        if self.key:
            keys.append(self._template(self.key, frame, batch).alias("__key"))
        routed = frame.with_columns(keys)
        single = routed["__topic"].n_unique() == 1 and (not self.key or routed["__key"].n_unique() == 1)
        groups = [((routed["__topic"][0], routed["__key"][0] if self.key else None), routed)] if single else \
            [((k[0], k[1] if self.key else None), g) for k, g in routed.group_by(
                ["__topic", "__key"] if self.key else ["__topic"], maintain_order=True)]
        for (topic, key), group in groups:
            body = group.drop(["__topic", "__key"] if self.key else ["__topic"])
            kb = key.encode() if key is not None else None
            if self.fmt == "arrow":
                sink = pa.BufferOutputStream()
                data = body.to_arrow()
                with pa.ipc.new_stream(sink, data.schema) as w:
                    w.write_table(data)
                yield Message(topic, kb, sink.getvalue().to_pybytes(), body.height)
                continue
            lines = self._json(body, batch.spec.precision)
            if self.fmt == "json-batch":
                yield Message(topic, kb, b"[" + b",".join(lines) + b"]", body.height)
            else:
                for line in lines:
                    yield Message(topic, kb, line, 1)

    def _json(self, frame: pl.DataFrame, precision: str) -> list[bytes]:
        conv = []
        for name, dtype in frame.schema.items():
            if isinstance(dtype, pl.Datetime):
                conv.append(pl.col(name).dt.strftime(_RFC3339[precision]) if self.ts_format == "rfc3339"
                            else pl.col(name).cast(pl.Int64))
            elif dtype == pl.Binary:
                conv.append(pl.col(name).bin.encode("hex"))
        text = frame.with_columns(conv).write_ndjson() if conv else frame.write_ndjson()
        return text.encode().splitlines()


class Publisher(Sink):
    """What the MQTT and Kafka targets share: the broker named, rendering, and the end of a run
    (close flushes, which waits for every acknowledgement, then disconnects; abort forgets)."""

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        cfg = self.config
        self.where = dsn.masked()
        if not dsn.host:
            raise DsnError(f"{self.where}: name the broker: {dsn.driver}://host:port?topic=...")
        key = cfg["key"] if "key" in self.spec else None  # Kafka message keys
        self.render = Renderer(cfg["topic"], key, cfg["format"], cfg["ts_format"], self.where)
        self.published = 0

    @abstractmethod
    def _disconnect(self) -> None:
        """Close the client (also after a failure)."""

    @abstractmethod
    def _forget(self) -> None:
        """Drop what is owed for messages that will not be waited for."""

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._disconnect()

    def abort(self) -> None:
        self._forget()
        self._disconnect()
