"""INSERT text for REST and BLOB tables, and grouping super-table rows by table."""

from __future__ import annotations

import decimal
import re
import struct

import numpy as np
import pyarrow as pa
import pytest

from tdetl.errors import DataError
from tdetl.grouping import split_by_table
from tdetl.model import Column
from tdetl.taos.insert import insert_statements, value_rows
from tdetl.types import parse_type


def _cols(*spec: str) -> list[Column]:
    return [Column(f"c{i}", parse_type(t)) for i, t in enumerate(spec)]


def test_value_rows_spell_every_kind_of_literal() -> None:
    cols = _cols("TIMESTAMP", "BOOL", "INT", "DOUBLE", "VARCHAR(20)", "NCHAR(5)", "VARBINARY(4)", "DECIMAL(6,2)")
    data = pa.record_batch([
        pa.array([1_700_000_000_123_456, None], pa.timestamp("us")),
        pa.array([True, None]), pa.array([-5, None], pa.int32()), pa.array([None, 0.5]),
        pa.array(["it's \\ ok", None]), pa.array(["日本", ""]), pa.array([b"\x00\xff", None], pa.binary()),
        pa.array([decimal.Decimal("12.30"), None], pa.decimal128(6, 2)),
    ], names=[c.name for c in cols])
    with pytest.raises(DataError, match=r"column 'c0': .*would lose data.*precision is ms"):
        value_rows(data, cols, "ms")
    assert value_rows(data, cols, "us") == [
        "(1700000000123456, true, -5, NULL, 'it\\'s \\\\ ok', '日本', '\\x00ff', 12.30)",
        "(NULL, NULL, NULL, 0.5, NULL, '', NULL, NULL)",
    ]


def test_floats_are_exact_and_nan_or_infinity_is_refused() -> None:
    cols = _cols("TIMESTAMP", "FLOAT", "DOUBLE")
    f32max = float(np.float32(3.4028234663852886e38))
    data = pa.record_batch([pa.array([1, 2], pa.timestamp("ms")), pa.array([-f32max, 0.1], pa.float32()),
                            pa.array([1.7976931348623157e308, None])], names=[c.name for c in cols])
    rows = value_rows(data, cols, "ms")
    # the float32's exact value, not its shortest text (-3.4028235e+38 overflows FLOAT when parsed)
    assert rows == ["(1, -3.4028234663852886e+38, 1.7976931348623157e+308)", f"(2, {float(np.float32(0.1))}, NULL)"]
    for bad in (float("nan"), float("-inf")):
        data = pa.record_batch([pa.array([1, 2], pa.timestamp("ms")), pa.array([0.5, bad], pa.float32()),
                                pa.array([1.0, 2.0])], names=[c.name for c in cols])
        with pytest.raises(DataError, match=r"column 'c1' row 1: .* cannot be written as SQL text"):
            value_rows(data, cols, "ms")


def test_geometry_is_written_as_wkt_that_parses_back_to_the_same_wkb() -> None:
    cols = _cols("TIMESTAMP", "GEOMETRY(100)")
    point = struct.pack("<BIdd", 1, 1, 0.1, -2.5)
    data = pa.record_batch([pa.array([1, 2, 3], pa.timestamp("ms")), pa.array([point, None, b"\x01\x01"])],
                           names=[c.name for c in cols])
    with pytest.raises(DataError, match=r"column 'c1': GEOMETRY value is not valid WKB"):
        value_rows(data, cols, "ms")
    assert value_rows(data.slice(0, 2), cols, "ms") == ["(1, 'POINT (0.1 -2.5)')", "(2, NULL)"]


def test_statements_pack_tables_under_the_limit_and_refuse_a_row_that_cannot_fit() -> None:
    cols = _cols("TIMESTAMP", "INT")
    rows = [f"({i}, {i})" for i in range(1000)]
    stmts = list(insert_statements([("a", cols, rows[:600]), ("b", cols, rows[600:])], 1024))
    assert all(len(s.encode()) <= 1024 for s in stmts)
    sent = [int(m) for s in stmts for m in re.findall(r"\((\d+), \1\)", s)]
    assert sent == list(range(1000))
    assert any("`a`" in s and "`b`" in s for s in stmts)
    with pytest.raises(DataError, match="table 'big': one row needs"):
        list(insert_statements([("big", cols, ["(" + "9" * 2000 + ", 1)"])], 1024))


def test_split_by_table_keeps_each_tables_order() -> None:
    data = pa.record_batch({"tbname": ["b", "a", "b", None, "a", "c"], "v": [1, 2, 3, 4, 5, 6]})
    got = [(n, b.column(1).to_pylist()) for n, b in split_by_table(data)]
    assert got == [("b", [1, 3]), ("a", [2, 5]), ("c", [6])]
