"""The Polars side of the one type map (:mod:`tdetl.types`): the dtype a TDengine type has in a
frame, and widths of undeclared text columns taken from the data. Apart from ``types`` so that
paths that never build a frame (backup, restore, sync) do not import Polars."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from .types import TDType, type_from_arrow


def polars_type(t: TDType) -> pl.DataType:
    """The Polars dtype a typed field has in a frame (through the one Arrow type map)."""
    return pl.Series(pa.array([], type=t.arrow("ms"))).dtype


def td_type(d: pl.DataType, where: str) -> TDType:
    return type_from_arrow(pl.Series([], dtype=d).to_arrow().type, where)


def sized(t: TDType, s: pl.Series) -> TDType:
    """Give an undeclared VARCHAR/NCHAR/VARBINARY width from the data (at least 1)."""
    if t.length is not None or t.name not in ("VARCHAR", "NCHAR", "VARBINARY", "GEOMETRY"):
        return t
    if t.name == "NCHAR":
        n = s.str.len_chars().max()
    elif s.dtype == pl.Binary:
        n = s.bin.size().max()
    else:
        n = s.str.len_bytes().max()
    return t.with_length(max(1, int(n or 0)))
