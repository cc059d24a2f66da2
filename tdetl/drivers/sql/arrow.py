"""What a SQL reader's Arrow needs before the type map sees it: instants in UTC without a zone,
wall-clock timestamps and dates placed in the source's ``timezone``, exact decimals at their declared
precision and scale (from text, so no digit is lost on the way), and the readers' extension types
(JSON, UUID, PostgreSQL's opaque types) as their text."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ...errors import SourceError, shown

MAX_DECIMAL = 38  # TDengine's widest DECIMAL; wider, or without a declared precision, stays exact text


@dataclass(frozen=True)
class Declared:
    """What the server declares for one result column beyond its Arrow type."""

    utc: bool = False  # a timestamp without a zone that holds UTC (MySQL TIMESTAMP in a UTC session)
    decimal: tuple[int, int] | None = None  # (precision, scale) of an exact number


def decimal_of(precision: int | None, scale: int | None) -> tuple[int, int] | None:
    """A declared NUMERIC/DECIMAL as TDengine's DECIMAL, or None where it does not fit (kept as text)."""
    if precision is None or scale is None or not 0 < precision <= MAX_DECIMAL or not 0 <= scale <= precision:
        return None
    return precision, scale


def _text(col: pa.ExtensionArray) -> pa.Array:
    if col.type.extension_name == "arrow.uuid":  # 16 bytes -> 8-4-4-4-12 hex, as the server prints it
        hexed = pl.Series(col.storage.cast(pa.binary())).bin.encode("hex")
        parts = [hexed.str.slice(a, b - a) for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))]
        return pl.select(pl.concat_str(parts, separator="-")).to_series().to_arrow()
    return col.storage  # JSON and the opaque types: their text


def _wall(col: pa.Array, tz: str) -> pa.Array:
    """Wall-clock times in ``tz`` as UTC (a time the zone skips or repeats is an error, not a guess)."""
    if tz == "UTC":
        return col
    return pc.cast(pc.assume_timezone(col, tz, ambiguous="raise", nonexistent="raise"), col.type)


def normalize(batch: pa.RecordBatch, declared: dict[str, Declared], tz: str, where: str) -> pa.RecordBatch:
    """One result batch ready for the type map (``tz``: the zone of wall-clock values)."""
    cols: list[pa.Array] = []
    for field, col in zip(batch.schema, batch.columns):
        d = declared.get(field.name, Declared())
        t = col.type
        try:
            if isinstance(col, pa.ExtensionArray):
                col = _text(col)
                t = col.type
            if d.decimal is not None and (pa.types.is_string(t) or pa.types.is_large_string(t)
                                          or pa.types.is_decimal(t)):
                col = pc.cast(col, pa.decimal128(*d.decimal))
            elif pa.types.is_date(t):
                col = _wall(pc.cast(col, pa.timestamp("ms")), tz)  # a day begins at midnight in the zone
            elif pa.types.is_timestamp(t):
                if t.tz is not None:
                    col = pc.cast(col, pa.timestamp(t.unit))  # the stored UTC instant, without its zone
                elif not d.utc:
                    col = _wall(col, tz)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise SourceError(f"{where}: column {field.name!r} ({field.type}): {shown(str(e), 200)}") from None
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)
