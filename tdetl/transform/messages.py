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

from ..errors import ConfigError, shown
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
                     index: Sequence[int] | None = None, full: bool = False,
                     schema: dict[str, Any] | None = None) -> pl.DataFrame:
        """Rows from JSON documents (arrays expand to several rows), with ROW = message index. With
        ``schema`` (keys as text) only those keys are read, whatever JSON type each message gives
        them: one message's ``true`` where others have numbers is then its own bad value. A batch
        whose types no column holds together raises ``_Mixed``."""
        n = len(payloads)
        index = list(range(n)) if index is None else list(index)
        raw = [p.encode() if isinstance(p, str) else p for p in payloads]
        if n and min(map(len, raw)) > 0:
            joined = b"\n".join(raw)
            if joined.count(b"\n") == n - 1 and not any(p[:1] == b"[" for p in raw):
                # a short schema inference first (3.5x faster); the full pass when types vary later on.
                # A key first seen after the sample is dropped silently by the short pass: callers
                # check their keys and come back with full=True.
                for infer in ((None,) if full or schema else (200, None)):
                    try:
                        df = pl.read_ndjson(io.BytesIO(joined), infer_schema_length=infer, schema=schema)
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
                doc = json.loads(p, parse_constant=_no_constant, parse_float=_finite)
            except (ValueError, UnicodeDecodeError, RecursionError) as e:
                reasons.append(f"{self.where}: {msgs.where(i)}: not JSON ({shown(str(e), quote=False)})")
                records.append({"message": shown(p.decode("utf-8", "replace"), 10_000, quote=False),
                                "reason": "not JSON"})
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
        try:
            df = pl.read_ndjson(io.BytesIO(b"\n".join(rows)), infer_schema_length=None, schema=schema)
        except (pl.exceptions.PolarsError, ValueError, OverflowError) as e:  # types no column can hold together
            raise _Mixed(str(e)) from None
        return df.with_columns(pl.Series(ROW, owners, pl.Int64))

    def _text_frame(self, msgs: Messages, rejects: Rejects) -> pl.DataFrame:
        if self.form == "payload":
            out = None
            for full in (False, True):
                held = _Quiet()  # rejections count only from the attempt whose frame is used
                try:
                    df = self._decode_json(msgs.payloads, msgs, held, full=full)  # type: ignore[arg-type]
                    if not full and (held.rejected or any(root not in df.columns for _, (root, _) in self._paths)):
                        continue
                    out = df.select([pl.col(ROW)] + [
                        (expr if root in df.columns else pl.lit(None, pl.String)).alias(f.alias)
                        for f, (root, expr) in self._paths])
                except (_Mixed, pl.exceptions.PolarsError):
                    if not full:
                        continue
                    return self._one_by_one(msgs, rejects)
                held.release(rejects)
                break
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
            values = meta[name].to_list()
            held = _Quiet()
            try:
                decoded = self._decode_json(values, msgs, held)  # type: ignore[arg-type]
            except _Mixed:  # a key whose JSON types differ between messages (true here, 1.5 there): as text
                held = _Quiet()
                decoded = self._decode_json(values, msgs, held, schema={f.name: pl.String for f in inner})  # type: ignore[arg-type]
            held.release(rejects)
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

    def _one_by_one(self, msgs: Messages, rejects: Rejects) -> pl.DataFrame:
        """The rare batch whose messages give one field JSON types no column holds together (an
        object here, a number there, deep inside a path): each message's fields are picked alone
        and kept as text; a message they cannot be picked from goes through the policy."""
        frames, reasons, records = [], [], []
        for i in range(len(msgs)):
            try:
                df = self._decode_json([msgs.payloads[i]], msgs, rejects, index=[i], full=True)
                picked = df.select([pl.col(ROW), *((expr if root in df.columns else pl.lit(None, pl.String))
                                                   .alias(f.alias) for f, (root, expr) in self._paths)])
            except (_Mixed, pl.exceptions.PolarsError) as e:
                reasons.append(f"{self.where}: {msgs.where(i)}: its fields cannot be read ({shown(str(e))})")
                records.append({"message": shown(msgs.payloads[i].decode("utf-8", "replace"), 10_000, quote=False),
                                "reason": "fields not readable"})
                continue
            frames.append(picked.with_columns([_as_text(picked[c]) for c in picked.columns if c != ROW]))
        rejects.reject(reasons, records)
        empty = pl.DataFrame({ROW: pl.Series([], dtype=pl.Int64),
                              **{f.alias: pl.Series([], dtype=pl.String) for f, _ in self._paths}})
        return pl.concat([empty, *frames], how="vertical_relaxed")

    def parse(self, msgs: Messages, rejects: Rejects, partition: str, position: Any) -> list[TableBatch]:
        if not len(msgs):
            return []
        if self.form == "payload" or self.json_fields:
            msgs = self._shallow(msgs, rejects)
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


    def _shallow(self, msgs: Messages, rejects: Rejects) -> Messages:
        """The messages whose JSON nests at most ``MAX_DEPTH`` deep; the others go through the
        policy before any reaches Polars (whose reader crashes the process on ~600 levels)."""
        if max(map(len, msgs.payloads)) <= MAX_DEPTH:  # too short to nest that deep: the common batch
            return msgs
        deep = [i for i, p in enumerate(msgs.payloads) if len(p) > MAX_DEPTH and json_depth(p) > MAX_DEPTH]
        if not deep:
            return msgs
        rejects.reject([f"{self.where}: {msgs.where(i)}: JSON nested deeper than {MAX_DEPTH} levels" for i in deep],
                       [{"message": shown(msgs.payloads[i].decode("utf-8", "replace"), 10_000, quote=False),
                         "reason": "nested too deep"} for i in deep])
        keep = sorted(set(range(len(msgs))) - set(deep))
        return Messages(*([column[i] for i in keep] for column in (
            msgs.payloads, msgs.topics, msgs.partitions, msgs.offsets, msgs.keys, msgs.ts_ms)))


MAX_DEPTH = 256  # JSON nesting levels a message may have (Polars' reader crashes near 600; it was tried to 500)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_EMPTY_PAIR = re.compile(rb"\{\}|\[\]")


def json_depth(payload: bytes) -> int:
    """How deep a JSON document nests, upper-bounded cheaply: its count of opening brackets (C
    speed); only a document with more than MAX_DEPTH of them is measured, by removing innermost
    pairs (outside strings) once per level."""
    opened = payload.count(b"{") + payload.count(b"[")
    if opened <= MAX_DEPTH:
        return opened
    skeleton = _STRING.sub(b"", payload).translate(None, _NOT_BRACKETS)
    depth = 0
    while skeleton and depth <= MAX_DEPTH:
        skeleton, found = _EMPTY_PAIR.subn(b"", skeleton)
        if not found:  # unbalanced, and deep enough to crash a reader: refused as too deep
            break
        depth += 1
    return depth if not skeleton else MAX_DEPTH + 1


_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"{}[]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{shown(text)} is out of a double's range")
    return value


class _Mixed(Exception):
    """Messages of one batch whose values no single column type holds."""


class _Quiet:
    """Holds the rejections of one attempt at a batch: reported only if its frame is the one used."""

    def __init__(self) -> None:
        self.rejected = False
        self._held: list[tuple[list[str], list[dict[str, Any]]]] = []

    def reject(self, reasons: list[str], records: list[dict[str, Any]]) -> None:
        self.rejected = self.rejected or bool(reasons)
        self._held.append((reasons, records))

    def release(self, rejects: Rejects) -> None:
        for reasons, records in self._held:
            rejects.reject(reasons, records)
