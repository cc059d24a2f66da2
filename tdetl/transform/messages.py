"""Micro-batches of broker messages (MQTT, Kafka) -> typed frames -> TableBatches.

JSON payloads are decoded as one newline-joined document by Polars' NDJSON reader (measured ~4x a
per-message ``json.loads`` loop); only a batch that reader refuses (a bad message, a pretty-printed
or array payload) is looked at message by message, to expand arrays and report the bad ones by
topic/partition/offset through the error policy. JSON paths (``$.a.b``, ``$["a"][0]["b"]``) become
Polars struct/list expressions compiled once.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from ..errors import ConfigError
from ..model import TableBatch
from ..quality import Rejects
from ..types import TDType, parse_type
from .casts import ROW, Field, FrameCaster, as_text
from .parser import Model, ParserConfig, TableBuilder

META = ("ts", "topic", "partition", "offset", "key", "value")
_PATH_PART = re.compile(r"""\.([A-Za-z_][\w-]*)|\[\s*(?:"([^"]*)"|'([^']*)'|(\d+))\s*\]""")


@dataclass
class Messages:
    """A micro-batch, column-wise as the clients hand it over."""

    payloads: list[bytes]
    topics: list[str]
    partitions: list[int]
    offsets: list[int]
    keys: list[bytes | None]
    ts_ms: list[int]

    def __len__(self) -> int:
        return len(self.payloads)

    def where(self, i: int) -> str:
        return f"message {self.topics[i]}/{self.partitions[i]}@{self.offsets[i]}"


def path_expr(path: str, where: str) -> tuple[str, pl.Expr]:
    """``id``, ``$.data.city`` or ``$["location"][0]["city"]`` as (top-level key, Polars expression)."""
    if not path.startswith("$"):
        return path, pl.col(path)
    rest, pos, expr, root = path[1:], 0, None, ""
    while pos < len(rest):
        m = _PATH_PART.match(rest, pos)
        if not m:
            raise ConfigError(f"{where}: JSON path {path!r} is not understood at {rest[pos:]!r}")
        key = m.group(1) or m.group(2) or m.group(3)
        if m.group(4) is not None:
            if expr is None:
                raise ConfigError(f"{where}: JSON path {path!r} must start with a key")
            expr = expr.list.get(int(m.group(4)), null_on_oob=True)
        else:
            if expr is None:
                root, expr = key, pl.col(key)
            else:
                expr = expr.struct.field(key)
        pos = m.end()
    if expr is None:
        raise ConfigError(f"{where}: JSON path {path!r} names nothing")
    return root, expr


def _as_text(s: pl.Series) -> pl.Series:
    """Untyped fields stay text: objects and lists as JSON, numbers and booleans as written."""
    return s if s.dtype == pl.String else as_text(s)


class MessageParser:
    """Compiled once per source: message batch -> TableBatches."""

    def __init__(self, config: ParserConfig | None, database: str | None, where: str,
                 default_table: str = "messages") -> None:
        self.where = where
        if config is None:  # the seed's first Kafka example: one row per message
            fields = (Field("ts", "ts", parse_type("TIMESTAMP(ms)")), Field("topic", "topic", TDType("VARCHAR")),
                      Field("partition", "partition", parse_type("INT")),
                      Field("offset", "offset", parse_type("BIGINT")),
                      Field("key", "key", TDType("VARBINARY")), Field("value", "value", TDType("VARBINARY")))
            self.form = "fields"
            self.models = (Model(default_table, None, (), tuple(f.alias for f in fields)),)
            self.json_fields: list[tuple[str, list[Field]]] = []
        else:
            fields, self.form, self.models = config.fields, config.form, config.models
            self.json_fields = config.json_fields
            if not self.models:
                raise ConfigError(f"{where}: --parser needs a 'model' for messages")
        self.fields = fields
        self._paths = [(f, path_expr(f.name, f"{where} field {f.alias!r}")) for f in fields] \
            if self.form == "payload" else []
        types: dict[str, TDType] = {}
        for f in fields:
            types[f.alias] = f.type or TDType("VARCHAR")
        for _, inner in self.json_fields:
            for f in inner:
                types[f.alias] = f.type or TDType("VARCHAR")
        if self.form == "fields":
            unknown = [f.name for f in fields if f.name not in META and not any(
                f.name == n for n, _ in self.json_fields)]
            if unknown:
                raise ConfigError(f"{where}: parse field {unknown[0]!r} is not a message field"
                                  f" ({', '.join(META)})")
        cast_fields = tuple(Field(f.alias, f.alias, f.type) for f in fields) + tuple(
            Field(f.alias, f.alias, f.type) for _, inner in self.json_fields for f in inner)
        self.caster = FrameCaster(cast_fields)
        self.builder = TableBuilder(self.models, types, database, where, config.steps if config else ())

    # -- decoding -------------------------------------------------------------------------------

    def _decode_json(self, payloads: Sequence[bytes | str], msgs: Messages, rejects: Rejects,
                     index: Sequence[int] | None = None, full: bool = False) -> pl.DataFrame:
        """Rows from JSON documents (arrays expand to several rows), with ROW = message index."""
        n = len(payloads)
        index = list(range(n)) if index is None else list(index)
        raw = [p.encode() if isinstance(p, str) else p for p in payloads]
        if n and min(map(len, raw)) > 0:
            joined = b"\n".join(raw)
            if joined.count(b"\n") == n - 1 and not any(p[:1] == b"[" for p in raw):
                # a short schema inference first (3.5x faster); the full pass when types vary later on.
                # A key first seen after the sample is dropped silently by the short pass: callers
                # check their keys and come back with full=True.
                for infer in ((None,) if full else (200, None)):
                    try:
                        df = pl.read_ndjson(io.BytesIO(joined), infer_schema_length=infer)
                    except (pl.exceptions.PolarsError, ValueError, OverflowError):
                        continue
                    if df.height == n:
                        return df.with_columns(pl.Series(ROW, index, pl.Int64))
                    break
        rows: list[bytes] = []
        owners: list[int] = []
        reasons, records = [], []
        for i, p in zip(index, raw):
            try:
                doc = json.loads(p)
            except (ValueError, UnicodeDecodeError) as e:
                reasons.append(f"{self.where}: {msgs.where(i)}: not JSON ({e})")
                records.append({"message": p.decode("utf-8", "replace"), "reason": "not JSON"})
                continue
            docs = doc if isinstance(doc, list) else [doc]
            for d in docs:
                if not isinstance(d, dict):
                    reasons.append(f"{self.where}: {msgs.where(i)}: JSON value is not an object")
                    records.append({"message": p.decode("utf-8", "replace"), "reason": "not an object"})
                    break
            else:
                for d in docs:
                    rows.append(json.dumps(d).encode())
                    owners.append(i)
        if reasons:
            rejects.reject(reasons, records)
        if not rows:
            return pl.DataFrame({ROW: pl.Series([], dtype=pl.Int64)})
        df = pl.read_ndjson(io.BytesIO(b"\n".join(rows)), infer_schema_length=None)
        return df.with_columns(pl.Series(ROW, owners, pl.Int64))

    def _text_frame(self, msgs: Messages, rejects: Rejects) -> pl.DataFrame:
        if self.form == "payload":
            out = None
            for full in (False, True):
                quiet = _Quiet()
                df = self._decode_json(msgs.payloads, msgs, rejects if full else quiet, full=full)  # type: ignore[arg-type]
                if not full and (quiet.rejected or any(root not in df.columns for _, (root, _) in self._paths)):
                    continue
                cols = [pl.col(ROW)] + [
                    (expr if root in df.columns else pl.lit(None, pl.String)).alias(f.alias)
                    for f, (root, expr) in self._paths]
                try:
                    out = df.select(cols)
                    break
                except pl.exceptions.PolarsError:
                    if full:
                        raise
            assert out is not None
            untyped = {f.alias for f in self.fields if f.type is None}
            return out.with_columns([_as_text(out[c]) for c in out.columns if c in untyped])
        meta = pl.DataFrame({
            ROW: pl.Series(range(len(msgs)), dtype=pl.Int64),
            "ts": pl.Series(msgs.ts_ms, dtype=pl.Int64).cast(pl.String),
            "topic": pl.Series(msgs.topics, dtype=pl.String),
            "partition": pl.Series(msgs.partitions, dtype=pl.Int64).cast(pl.String),
            "offset": pl.Series(msgs.offsets, dtype=pl.Int64).cast(pl.String),
            "key": pl.Series(msgs.keys, dtype=pl.Binary),
            "value": pl.Series(msgs.payloads, dtype=pl.Binary),
        })
        frame = meta.select([pl.col(ROW), *(pl.col(f.name).alias(f.alias) for f in self.fields)])
        for name, inner in self.json_fields:
            decoded = self._decode_json(meta[name].to_list(), msgs, rejects)
            picked = decoded.select([pl.col(ROW), *((pl.col(f.name) if f.name in decoded.columns
                                                    else pl.lit(None, pl.String)).alias(f.alias) for f in inner)])
            untyped = {f.alias for f in inner if f.type is None}
            picked = picked.with_columns([_as_text(picked[c]) for c in picked.columns if c in untyped])
            frame = frame.drop([f.alias for f in inner if f.alias in frame.columns]).join(
                picked, on=ROW, how="inner", maintain_order="right")
        # binary meta fields stay bytes only when typed binary; otherwise they are text
        return frame.with_columns([pl.col(f.alias).cast(pl.String) for f in self.fields
                                   if frame[f.alias].dtype == pl.Binary and not (
                                       f.type and f.type.name in ("VARBINARY", "BLOB", "GEOMETRY"))])

    def parse(self, msgs: Messages, rejects: Rejects, partition: str, position: Any) -> list[TableBatch]:
        if not len(msgs):
            return []
        frame = self._text_frame(msgs, rejects)
        if frame.height == 0:
            return []

        def locate(i: int) -> tuple[str, dict[str, Any]]:
            return f"{self.where}: {msgs.where(i)}", {
                "topic": msgs.topics[i], "partition": msgs.partitions[i], "offset": msgs.offsets[i],
                "message": msgs.payloads[i].decode("utf-8", "replace")}

        typed = self.caster.cast(frame, self.where, locate, rejects)
        if typed.height == 0:
            return []
        return self.builder.build(typed, rejects, locate, partition, position)


class _Quiet:
    """Collects rejections of a first, fast attempt (they are reported by the second one)."""

    def __init__(self) -> None:
        self.rejected = False

    def reject(self, reasons: list[str], records: list[dict[str, Any]]) -> None:
        self.rejected = self.rejected or bool(reasons)
