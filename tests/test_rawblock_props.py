"""Property: any batch of any TDengine types survives encode -> decode unchanged."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from tdetl import rawblock as rb
from tdetl.model import Column
from tdetl.types import TDType, parse_type

_INT_RANGES = {"TINYINT": 8, "SMALLINT": 16, "INT": 32, "BIGINT": 64}


def _decimal(unscaled: int, scale: int) -> Decimal:
    """Plain digits (no exponent form, whose precision pyarrow would misread)."""
    sign, u = ("-" if unscaled < 0 else ""), abs(unscaled)
    if not scale:
        return Decimal(f"{sign}{u}")
    q, r = divmod(u, 10**scale)
    return Decimal(f"{sign}{q}.{r:0{scale}d}")


def _values(t: TDType) -> st.SearchStrategy[Any]:
    name = t.name
    if name == "TIMESTAMP":
        return st.integers(-(2**62), 2**62)
    if name == "BOOL":
        return st.booleans()
    if name in _INT_RANGES:
        b = _INT_RANGES[name]
        return st.integers(-(2 ** (b - 1)), 2 ** (b - 1) - 1)
    if name.endswith("UNSIGNED"):
        return st.integers(0, 2 ** _INT_RANGES[name.split()[0]] - 1)
    if name == "FLOAT":
        return st.floats(width=32, allow_nan=False)
    if name == "DOUBLE":
        return st.floats(allow_nan=False)
    if name == "VARCHAR":
        return st.text(max_size=(t.length or 64) // 4)
    if name == "NCHAR":
        return st.text(max_size=t.length or 8)
    if name == "JSON":
        return st.text(max_size=40)
    if name in ("VARBINARY", "GEOMETRY"):
        return st.binary(max_size=t.length or 16)
    if name == "BLOB":
        return st.binary(max_size=300)
    if name == "DECIMAL":
        p, s = t.precision or 10, t.scale or 0
        return st.integers(-(10**p - 1), 10**p - 1).map(lambda u: _decimal(u, s))
    raise AssertionError(name)


TYPES = st.sampled_from([
    "BOOL", "TINYINT", "SMALLINT", "INT", "BIGINT", "TINYINT UNSIGNED", "SMALLINT UNSIGNED",
    "INT UNSIGNED", "BIGINT UNSIGNED", "FLOAT", "DOUBLE", "VARCHAR(1)", "VARCHAR(40)", "NCHAR(1)",
    "NCHAR(12)", "JSON", "VARBINARY(5)", "GEOMETRY(32)", "BLOB", "DECIMAL(1,0)", "DECIMAL(10,2)",
    "DECIMAL(18,6)", "DECIMAL(19,0)", "DECIMAL(38,10)",
]).map(parse_type)


@st.composite
def batches(draw: st.DrawFn) -> tuple[pa.RecordBatch, list[Column], str]:
    precision = draw(st.sampled_from(["ms", "us", "ns"]))
    types = [TDType("TIMESTAMP"), *draw(st.lists(TYPES, min_size=0, max_size=6))]
    fields = [Column(f"c{i}", t) for i, t in enumerate(types)]
    n = draw(st.integers(1, 40))
    lead = draw(st.integers(0, 9))  # rows before the slice: exercises Arrow offsets
    arrays = []
    for i, col in enumerate(fields):
        values = _values(col.type) if i == 0 else st.one_of(st.none(), _values(col.type))
        vals = draw(st.lists(values, min_size=n + lead, max_size=n + lead))
        arrays.append(pa.array(vals, type=col.type.arrow(precision)))
    batch = pa.RecordBatch.from_arrays(arrays, names=[c.name for c in fields]).slice(lead, n)
    return batch, fields, precision


def _plain(batch: pa.RecordBatch) -> list[list[Any]]:
    cols = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in batch.columns]
    return [c.to_pylist() for c in cols]


@settings(max_examples=300, deadline=None)
@given(batches())
def test_encode_decode_round_trip(case: tuple[pa.RecordBatch, list[Column], str]) -> None:
    batch, fields, precision = case
    enc = rb.Encoder(capacity=32)
    block = bytes(rb.encode(batch, fields, precision, enc))
    assert int.from_bytes(block[4:8], "little") == len(block) and block[-1] == 0
    back = rb.decode(block, fields, precision)
    assert back.schema.equals(batch.schema)
    assert _plain(back) == _plain(batch)
    again = bytes(rb.encode(back, fields, precision, enc))  # decode -> encode is the identity on bytes
    assert again == block
