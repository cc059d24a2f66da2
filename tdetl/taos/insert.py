"""``INSERT`` text for the paths that cannot take raw blocks (REST, BLOB tables): value tuples
are built column-wise with Arrow compute, and tables are packed many per statement under
``max-sql-length``."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from ..model import Column
from .ddl import ident
from .wkt import wkb_to_wkt


def _quoted(arr: pa.Array) -> pa.Array:
    text = pc.replace_substring(arr, "\\", "\\\\")
    text = pc.replace_substring(text, "'", "\\'")
    return pc.binary_join_element_wise("'", text, "'", "")


def _literals(arr: pa.Array, col: Column, precision: str) -> pa.Array:
    """SQL literals of one column (``NULL`` for nulls) as a string array."""
    t = col.type
    if t.name == "TIMESTAMP":
        try:
            text = arr.cast(pa.timestamp(precision)).cast(pa.int64()).cast(pa.string())
        except pa.ArrowInvalid as e:
            raise DataError(f"column {col.name!r}: {e} (the database precision is {precision})") from None
    elif t.name == "BOOL":
        text = pc.if_else(arr, "true", "false")
    elif t.name == "GEOMETRY":  # the SQL parser takes WKT only
        try:
            text = pa.array([None if v is None else f"'{wkb_to_wkt(v)}'" for v in arr.to_pylist()], pa.string())
        except DataError as e:
            raise DataError(f"column {col.name!r}: {e}") from None
    elif t.name in ("VARBINARY", "BLOB"):
        hexed = pl.from_arrow(arr.cast(pa.large_binary())).bin.encode("hex").to_arrow()  # type: ignore[union-attr]
        text = pc.binary_join_element_wise("'\\x", hexed.cast(pa.string()), "'", "")  # hex needs no escaping
    elif t.name in ("VARCHAR", "NCHAR", "JSON"):
        text = _quoted(arr.cast(pa.string()))
    elif t.name in ("FLOAT", "DOUBLE"):
        finite = pc.is_finite(arr)
        if pc.any(pc.invert(finite)).as_py():  # nulls stay null; NaN/inf would be lost
            row = pc.index(finite, False).as_py()
            raise DataError(f"column {col.name!r} row {row}: {arr[row].as_py()} cannot be written as SQL text"
                            " (TDengine's parser refuses NaN and infinity); write it over taos:// or taos+ws://,"
                            " whose raw blocks keep it")
        # a float32's shortest text (-3.4028235e+38) can overflow FLOAT when read back as a double;
        # the exact double value of the float32 parses to the same float32
        text = pc.if_else(finite, arr.cast(pa.float64()).cast(pa.string()), pa.scalar(None, pa.string()))
    else:
        text = arr.cast(pa.string())
    return pc.fill_null(text, "NULL")


def value_rows(data: pa.RecordBatch, columns: Sequence[Column], precision: str) -> list[str]:
    """``(v1, v2, ...)`` per row."""
    if data.num_rows == 0:
        return []
    if len(columns) != data.num_columns:
        raise DataError(f"{data.num_columns} columns given for {len(columns)} fields")
    parts = [_literals(data.column(i), c, precision) for i, c in enumerate(columns)]
    joined = pc.binary_join_element_wise("(", *[x for p in parts for x in (p, ", ")][:-1], ")", "")
    return joined.to_pylist()


def insert_statements(tables: Iterable[tuple[str, Sequence[Column], list[str]]], max_sql: int) -> Iterator[str]:
    """Multi-table ``INSERT INTO t1 (cols) VALUES ... t2 (cols) VALUES ...`` statements, each at
    most ``max_sql`` bytes (a single row longer than that is an error naming its table)."""
    head = "INSERT INTO"
    out: list[str] = []
    size = len(head)
    for name, columns, rows in tables:
        prefix = f" {ident(name)} ({', '.join(ident(c.name) for c in columns)}) VALUES"
        lengths = [len(r.encode()) + 1 for r in rows]
        cum = [0, *accumulate(lengths)]
        i = 0
        while i < len(rows):
            room = max_sql - size - len(prefix.encode())
            j = bisect_right(cum, cum[i] + room) - 1  # rows i..j-1 fit
            if j <= i:
                if out:
                    yield head + "".join(out)
                    out, size = [], len(head)
                    continue
                raise DataError(f"table {name!r}: one row needs {lengths[i] + len(head) + len(prefix)} bytes,"
                                f" more than max-sql-length={max_sql}")
            out.append(prefix + " " + " ".join(rows[i:j]))
            size += len(prefix.encode()) + cum[j] - cum[i]
            i = j
    if out:
        yield head + "".join(out)
