"""Text to typed columns: the fields a config names, the casts per TDengine type (vectorised in
Polars, columns in parallel), and the caster that applies them to a frame and reports each row that
does not convert. Below both the parser config and the transform steps, which use it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import polars as pl

from ..errors import ConfigError, shown
from ..quality import Rejects, truncate
from ..types import TDType, parse_type

ROW = "__row"
_BOOL = {"true": True, "t": True, "1": True, "yes": True, "y": True, "on": True,
         "false": False, "f": False, "0": False, "no": False, "n": False, "off": False}


@dataclass(frozen=True)
class Field:
    name: str  # where the value comes from: a CSV column, a JSON key or path
    alias: str  # what it is called afterwards
    type: TDType | None = None  # None: kept as text



Cast = Callable[[pl.Series], pl.Series]
# Where a row came from, for error reports: (text such as "file.csv:12", fields for the archive).
Locate = Callable[[int], tuple[str, dict[str, Any]]]


def _ts_cast(unit: str) -> Cast:
    def cast(s: pl.Series) -> pl.Series:
        s = s.str.strip_chars()
        ints = s.cast(pl.Int64, strict=False)
        if ints.null_count() == s.null_count():  # all epochs: the fast path
            return ints.cast(pl.Datetime(unit))
        norm = s.str.replace(r"^(\d{4}-\d\d-\d\d)[Tt ]", "$1 ").str.replace(r"[Zz]$", "+00:00")
        aware = (norm.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%z", time_unit=unit, strict=False)
                 .dt.convert_time_zone("UTC").dt.replace_time_zone(None))
        naive = norm.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit=unit, strict=False)
        day = norm.str.to_datetime("%Y-%m-%d", time_unit=unit, strict=False)
        return pl.select(pl.coalesce(ints.cast(pl.Datetime(unit)), aware, naive, day)).to_series()
    return cast


def _binary_cast(s: pl.Series) -> pl.Series:
    if s.dtype == pl.Binary:  # bytes already (message keys and values)
        return s
    hexed = s.str.starts_with("\\x")
    decoded = s.str.slice(2).str.decode("hex", strict=False)
    return pl.select(pl.when(hexed).then(decoded).otherwise(s.cast(pl.Binary))).to_series()


def _decimal_cast(p: int, sc: int) -> Cast:
    pattern = rf"^[+-]?\d{{0,{p - sc}}}(\.\d{{0,{sc}}})?$" if sc else rf"^[+-]?\d{{1,{p}}}\.?$"

    def cast(s: pl.Series) -> pl.Series:
        s = s.str.strip_chars()
        ok = s.str.contains(pattern)
        return pl.select(pl.when(ok).then(s).otherwise(None).cast(pl.Decimal(p, sc), strict=False)).to_series()
    return cast


_PL_NUM = {"TINYINT": pl.Int8, "SMALLINT": pl.Int16, "INT": pl.Int32, "BIGINT": pl.Int64,
           "TINYINT UNSIGNED": pl.UInt8, "SMALLINT UNSIGNED": pl.UInt16, "INT UNSIGNED": pl.UInt32,
           "BIGINT UNSIGNED": pl.UInt64, "FLOAT": pl.Float32, "DOUBLE": pl.Float64}


def text_cast(t: TDType) -> Cast:
    """A vectorised text -> ``t`` conversion; a value it cannot convert becomes null (and is then
    reported by :func:`cast_frame`)."""
    if t.name in _PL_NUM:
        dtype = _PL_NUM[t.name]
        return lambda s: s.str.strip_chars().cast(dtype, strict=False)
    if t.name == "BOOL":
        return lambda s: s.str.strip_chars().str.to_lowercase().replace_strict(
            _BOOL, default=None, return_dtype=pl.Boolean)
    if t.name == "TIMESTAMP":
        return _ts_cast(t.unit or "ms")
    if t.name == "DECIMAL":
        return _decimal_cast(t.precision or 38, t.scale or 0)
    if t.name in ("VARBINARY", "GEOMETRY", "BLOB"):
        return _binary_cast
    return lambda s: s  # VARCHAR, NCHAR, JSON stay text


def any_cast(t: TDType) -> Cast:
    """Like :func:`text_cast`, but numbers and booleans already decoded (from JSON) convert
    directly; a float bound for an integer column must be integral, else it is reported."""
    from_text = text_cast(t)

    def cast(s: pl.Series) -> pl.Series:
        dt = s.dtype
        if dt in (pl.String, pl.Binary, pl.Null):
            return from_text(s.cast(pl.String) if dt == pl.Null else s)
        if dt.is_numeric() and t.name in _PL_NUM:
            if dt.is_float() and not _PL_NUM[t.name].is_float():
                s = pl.select(pl.when(s == s.floor()).then(s)).to_series()
            return s.cast(_PL_NUM[t.name], strict=False)
        if dt.is_integer() and t.name == "TIMESTAMP":
            return s.cast(pl.Int64).cast(pl.Datetime(t.unit or "ms"))
        if dt.is_float() and t.name == "TIMESTAMP":  # 1.7e12 among integers: integral and in range, or null
            whole = pl.select(pl.when((s == s.floor()) & (s.abs() < 2.0**63)).then(s)).to_series()
            return whole.cast(pl.Int64, strict=False).cast(pl.Datetime(t.unit or "ms"))
        if dt == pl.Boolean and t.name == "BOOL":
            return s
        return from_text(as_text(s))
    return cast


def as_text(s: pl.Series) -> pl.Series:
    """A decoded JSON value as text: objects and lists as JSON, booleans as true/false."""
    if isinstance(s.dtype, pl.Struct):
        return s.struct.json_encode()
    if isinstance(s.dtype, (pl.List, pl.Array)):  # rare (arrays in a mapped field): per value
        return pl.Series(s.name, [None if v is None else json.dumps(v.to_list()) for v in s], pl.String)
    if s.dtype == pl.Boolean:
        return s.cast(pl.String).str.to_lowercase()
    return s.cast(pl.String)


def _too_long(t: TDType, s: pl.Series) -> pl.Series | None:
    if t.length is None:
        return None
    if t.name == "NCHAR":
        return s.str.len_chars() > t.length
    if t.name in ("VARCHAR", "JSON"):
        return s.str.len_bytes() > t.length
    if t.name in ("VARBINARY", "GEOMETRY"):
        return s.bin.size() > t.length
    return None


def infer_fields(df: pl.DataFrame) -> tuple[Field, ...]:
    """Types for text columns nobody typed: the narrowest of BIGINT, DOUBLE, BOOL, TIMESTAMP(ms)
    that converts every non-empty value of the sample, else VARCHAR."""
    out = []
    for name in df.columns:
        if name == ROW:
            continue
        s = df[name]
        chosen: TDType | None = None
        for cand in ("BIGINT", "DOUBLE", "BOOL", "TIMESTAMP(ms)"):
            t = parse_type(cand)
            if s.null_count() < len(s) and text_cast(t)(s).null_count() == s.null_count():
                chosen = t
                break
        out.append(Field(name, name, chosen))
    return tuple(out)


# Polars releases the GIL inside its kernels, so columns convert in parallel on this pool.
_POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="tdetl-cast")


@dataclass
class FrameCaster:
    """Casts text frames to typed ones by ``fields``; fields not listed pass through as text."""

    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        self._casts = [(f, any_cast(f.type) if f.type else None) for f in self.fields]

    def cast(self, df: pl.DataFrame, where: str, locate: Locate, rejects: Rejects) -> pl.DataFrame:
        """Typed frame (aliases applied). A value that does not convert (type-mismatch) or is longer
        than its declared width (value-too-long) is handled as ``rejects`` says for that situation:
        the row stops the run, goes (dropped or archived), or the value is repaired (nulled,
        truncated, or kept for the column to be widened)."""
        listed = {f.name for f in self.fields}
        missing = [f.name for f in self.fields if f.name not in df.columns]
        if missing:
            raise ConfigError(f"{where}: parser field {missing[0]!r} is not a column"
                              f" (columns: {', '.join(c for c in df.columns if c != ROW)})")
        cols: dict[str, pl.Series] = {}
        mismatch: list[tuple[Field, pl.Series, str]] = []
        long: list[tuple[Field, pl.Series, str]] = []
        outs = _POOL.map(lambda c: c[1](df[c[0].name]) if c[1] else df[c[0].name], self._casts)
        for (f, fn), out in zip(self._casts, outs):
            src = df[f.name]
            if fn is not None and f.type is not None:
                failed = src.is_not_null() & out.is_null()
                if failed.any():
                    mismatch.append((f, failed, f"is not a valid {f.type}"))
            if f.type is not None:
                over = _too_long(f.type, out)
                if over is not None and over.any():
                    long.append((f, over.fill_null(False), f"is longer than {f.type}"))
            cols[f.alias] = out.alias(f.alias)
        for name in df.columns:
            if name not in listed and name not in cols:
                cols[name] = df[name]
        typed = pl.DataFrame(list(cols.values()))
        if not mismatch and not long:
            return typed
        remove = pl.Series([False] * df.height)
        for situation, bad in (("type-mismatch", mismatch), ("value-too-long", long)):
            if not bad:
                continue
            choice = rejects.choice(situation)
            mask = pl.select(pl.any_horizontal([m for _, m, _ in bad])).to_series()
            if choice in ("truncate", "truncate-and-archive"):
                for f, _m, _ in bad:
                    assert f.type is not None and f.type.length is not None
                    cut = truncate(typed[f.alias].to_arrow(), f.type.name, f.type.length)
                    typed = typed.with_columns(pl.Series(f.alias, cut))
            if choice in ("null", "widen", "truncate"):  # the value was repaired (or is already null)
                rejects.handle(situation, choice, [], [], count=int(mask.sum()))
                continue
            reasons, records = _described(df, bad, locate)
            rejects.handle(situation, choice, reasons, records)
            if choice != "truncate-and-archive":
                remove = remove | mask
        return typed.filter(~remove) if remove.any() else typed


def _described(df: pl.DataFrame, bad: list[tuple[Field, pl.Series, str]],
               locate: Locate) -> tuple[list[str], list[dict[str, Any]]]:
    """Per bad row (only those: the rare path), its first reason and the record with provenance."""
    first_bad: dict[int, tuple[Field, str]] = {}
    for f, m, why in bad:
        for i in m.arg_true().to_list():
            first_bad.setdefault(i, (f, why))
    reasons: list[str] = []
    records: list[dict[str, Any]] = []
    for i in sorted(first_bad):
        f, why = first_bad[i]
        row = df.row(i, named=True)
        at, origin = locate(row[ROW])
        reasons.append(f"{at}: column {f.name!r} value {shown(row[f.name])} {why}")
        records.append({**{k: v for k, v in row.items() if k != ROW}, **origin})  # provenance wins
    return reasons, records
