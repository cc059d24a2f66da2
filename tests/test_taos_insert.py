"""INSERT text for REST and BLOB tables, and grouping super-table rows by table."""

from __future__ import annotations

import decimal
import re

import pyarrow as pa
import pytest

from tdetl.errors import DataError
from tdetl.model import Column
from tdetl.sources.taos import split_by_table
from tdetl.taos.insert import insert_statements, value_rows
from tdetl.types import parse_type


def _cols(*spec: str) -> list[Column]:
    return [Column(f"c{i}", parse_type(t)) for i, t in enumerate(spec)]


def test_value_rows_spell_every_kind_of_literal() -> None:
    cols = _cols("TIMESTAMP", "BOOL", "INT", "DOUBLE", "VARCHAR(20)", "NCHAR(5)", "VARBINARY(4)", "DECIMAL(6,2)")
    data = pa.record_batch([
        pa.array([1_700_000_000_123_456, None], pa.timestamp("us")),
        pa.array([True, None]), pa.array([-5, None], pa.int32()), pa.array([float("inf"), 0.5]),
        pa.array(["it's \\ ok", None]), pa.array(["日本", ""]), pa.array([b"\x00\xff", None], pa.binary()),
        pa.array([decimal.Decimal("12.30"), None], pa.decimal128(6, 2)),
    ], names=[c.name for c in cols])
    with pytest.raises(DataError, match=r"column 'c0': .*would lose data.*precision is ms"):
        value_rows(data, cols, "ms")
    assert value_rows(data, cols, "us") == [
        "(1700000000123456, true, -5, NULL, 'it\\'s \\\\ ok', '日本', '\\x00ff', 12.30)",
        "(NULL, NULL, NULL, 0.5, NULL, '', NULL, NULL)",
    ]


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
