"""The raw-block codec against blocks captured from a real TDengine 3.3.7.5 server
(shared/golden): decoding gives the recorded values, encoding those values gives the same bytes."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tdetl import rawblock as rb
from tdetl.errors import DataError
from tdetl.model import Column
from tdetl.types import TDType, parse_type

CASES = ["alltypes_ms", "alltypes_us", "alltypes_ns", "meters_5000", "strings_3000", "blob",
         "json_tag_query", "tags_query"]


def _value(v: Any) -> Any:
    """A value as the golden JSON writes it, as Python."""
    if isinstance(v, dict):
        if "float" in v:
            return float.fromhex(v["float"])
        if "hex" in v:
            return bytes.fromhex(v["hex"])
        if "decimal" in v:
            return Decimal(v["decimal"])
    return v


def _load(golden: Path, case: str) -> tuple[dict[str, Any], bytes, list[Column]]:
    meta = json.loads((golden / f"{case}.json").read_text())
    data = (golden / f"{case}.block").read_bytes()
    first = data[meta["blocks"][0]["offset"]:]
    types = rb.block_types(first)  # names come from the fetch fields, declared widths from the block
    fields = [Column(f["name"], t) for f, t in zip(meta["fields_from_taos_fetch_fields"], types)]
    return meta, data, fields


def _arrow(values: list[list[Any]], fields: list[Column], precision: str) -> pa.RecordBatch:
    """The golden values as an Arrow batch, built without the codec."""
    arrays = []
    for i, col in enumerate(fields):
        vals = [_value(r[i]) for r in values]
        arrays.append(pa.array(vals, type=col.type.arrow(precision)))
    return pa.RecordBatch.from_arrays(arrays, names=[c.name for c in fields])


def _plain(batch: pa.RecordBatch) -> list[list[Any]]:
    cols = []
    for col in batch.columns:
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        cols.append(col.to_pylist())
    return [list(r) for r in zip(*cols)]


@pytest.mark.parametrize("case", CASES)
def test_golden_decode(golden: Path, case: str) -> None:
    meta, data, fields = _load(golden, case)
    rows: list[list[Any]] = []
    for blk in meta["blocks"]:
        batch = rb.decode(data[blk["offset"]:blk["offset"] + blk["length"]], fields, meta["precision"])
        assert batch.num_rows == blk["rows"]
        if any(c.type.name == "TIMESTAMP" for c in fields):
            assert batch.schema.field(0).type == pa.timestamp(meta["precision"])
        rows.extend(_plain(batch))
    assert rows == [[_value(v) for v in r] for r in meta["values"]]
    assert sum(b.num_rows for b in rb.decode_all(data, fields, meta["precision"])) == len(meta["values"])


@pytest.mark.parametrize("case", CASES)
def test_golden_encode_is_byte_exact(golden: Path, case: str) -> None:
    meta, data, fields = _load(golden, case)
    enc = rb.Encoder(capacity=64)  # small on purpose: the buffer must grow and be reused
    start = 0
    for blk in meta["blocks"]:
        batch = _arrow(meta["values"][start:start + blk["rows"]], fields, meta["precision"])
        start += blk["rows"]
        got = bytes(rb.encode(batch, fields, meta["precision"], enc))
        want = data[blk["offset"]:blk["offset"] + blk["length"]]
        assert len(got) == len(want)
        assert got == want, f"first difference at byte {next(i for i in range(len(got)) if got[i] != want[i])}"


@pytest.mark.parametrize("case", ["alltypes_ms", "alltypes_us", "alltypes_ns"])
def test_timestamps_from_finer_arrow_units_give_the_same_bytes(golden: Path, case: str) -> None:
    """Exact divisions: the golden values given as timestamp[ns] (or [us]) encode to the ms/us bytes."""
    meta, data, fields = _load(golden, case)
    batch = _arrow(meta["values"], fields, meta["precision"])
    for unit in ("ms", "us", "ns")[("ms", "us", "ns").index(meta["precision"]):]:
        given = batch.set_column(0, "ts", batch.column(0).cast(pa.timestamp(unit)))
        assert bytes(rb.encode(given, fields, meta["precision"])) == data
        as_int = batch.set_column(0, "ts", batch.column(0).cast(pa.int64()))
        assert bytes(rb.encode(as_int, fields, meta["precision"])) == data  # int64 = already in precision


def test_timestamps_scale_up_with_overflow_checked() -> None:
    fields = [Column("ts", TDType("TIMESTAMP"))]
    batch = pa.record_batch({"ts": pa.array([1_700_000_000_123, None, -5], pa.timestamp("ms"))})
    back = rb.decode(rb.encode(batch, fields, "ns"), fields, "ns")
    assert back.column(0).cast(pa.int64()).to_pylist() == [1_700_000_000_123_000_000, None, -5_000_000]


def _spec(*cols: tuple[str, str]) -> list[Column]:
    return [Column(n, parse_type(t)) for n, t in cols]


def test_errors_name_column_and_row() -> None:
    fields = _spec(("ts", "TIMESTAMP"), ("s", "VARCHAR(3)"), ("n", "NCHAR(2)"))
    ok = pa.record_batch({"ts": pa.array([1, 2], pa.timestamp("ms")), "s": ["ab", "abc"], "n": ["中文", "x"]})
    assert rb.decode(rb.encode(ok, fields, "ms"), fields, "ms").to_pylist() == ok.to_pylist()
    long_s = ok.set_column(1, "s", pa.array(["ab", "abcd"]))
    with pytest.raises(DataError, match=r"column 's' row 1: value 'abcd' is longer than VARCHAR\(3\)"):
        rb.encode(long_s, fields, "ms")
    long_n = ok.set_column(2, "n", pa.array(["中文字", "x"]))
    with pytest.raises(DataError, match=r"column 'n' row 0: value '中文字' is longer than NCHAR\(2\)"):
        rb.encode(long_n, fields, "ms")
    lossy = ok.set_column(0, "ts", pa.array([1_000_000, 1_000_001], pa.timestamp("us")))
    with pytest.raises(DataError, match=r"column 'ts' row 1: .* not a whole number of ms"):
        rb.encode(lossy, fields, "ms")
    big = ok.set_column(0, "ts", pa.array([0, 2**62], pa.timestamp("ms")))
    with pytest.raises(DataError, match=r"column 'ts' row 1: .* out of range for TIMESTAMP at precision ns"):
        rb.encode(big, fields, "ns")
    with pytest.raises(DataError, match="column 'x' is not in the batch"):
        rb.encode(ok, [*fields, Column("x", TDType("INT"))], "ms")
    d64 = [Column("d", parse_type("DECIMAL(18,0)"))]
    with pytest.raises(DataError, match="column 'd'"):
        rb.encode(pa.record_batch({"d": pa.array([Decimal(10) ** 20], pa.decimal128(38, 0))}), d64, "ms")
    with pytest.raises(DataError, match="cannot encode Arrow string as INT"):
        rb.encode(pa.record_batch({"i": ["x"]}), [Column("i", TDType("INT"))], "ms")


def test_decode_refuses_damaged_blocks(golden: Path) -> None:
    _meta, data, fields = _load(golden, "alltypes_ms")
    with pytest.raises(DataError, match="column 'c_i8': block holds type id 2"):
        rb.decode(data, [*fields[:2], Column("c_i8", TDType("INT")), *fields[3:]], "ms")
    with pytest.raises(DataError, match="not a raw block"):
        rb.decode(data[:100], fields, "ms")
    with pytest.raises(DataError, match="raw block has 18 columns, fields name 2"):
        rb.decode(data, fields[:2], "ms")
    broken = bytearray(data)
    broken[28 + 9 * 18 - 4] ^= 0x40  # the last value-area length
    with pytest.raises(DataError, match="lengths do not add up"):
        rb.decode(bytes(broken), fields, "ms")


def test_big_endian_lengths_from_the_server_wire_are_read(golden: Path) -> None:
    _meta, data, fields = _load(golden, "alltypes_ms")
    wire = bytearray(data)
    base = 28 + 5 * 18
    for i in range(18):
        wire[base + 4 * i: base + 4 * i + 4] = bytes(reversed(wire[base + 4 * i: base + 4 * i + 4]))
    assert rb.decode(bytes(wire), fields, "ms").equals(rb.decode(data, fields, "ms"))


def test_blocks_split_under_a_byte_limit() -> None:
    n = 10_000
    fields = _spec(("ts", "TIMESTAMP"), ("v", "VARCHAR(64)"))
    batch = pa.record_batch({"ts": pa.array(range(n), pa.timestamp("ms")),
                             "v": [("x" * (i % 60)) if i % 7 else None for i in range(n)]})
    whole = len(rb.encode(batch, fields, "ms"))
    blocks = [bytes(b) for b in rb.encode_blocks(batch, fields, "ms", max_bytes=whole // 5)]
    assert len(blocks) >= 5 and all(len(b) <= whole // 5 for b in blocks)
    back = pa.Table.from_batches([rb.decode(b, fields, "ms") for b in blocks])
    assert back.to_pylist() == batch.to_pylist()
    ranges = [(first, n) for first, n, _ in rb.encode_ranges(batch, fields, "ms", max_rows=3000)]
    assert ranges == [(0, 3000), (3000, 3000), (6000, 3000), (9000, 1000)]


def test_sliced_and_large_arrow_inputs() -> None:
    fields = _spec(("ts", "TIMESTAMP"), ("b", "BOOL"), ("i", "INT"), ("s", "NCHAR(8)"), ("x", "VARBINARY(8)"))
    n = 37
    full = pa.record_batch({
        "ts": pa.array(range(n), pa.timestamp("ms")),
        "b": pa.array([None if i % 5 == 0 else i % 3 == 0 for i in range(n)]),
        "i": pa.array([None if i % 4 == 0 else i for i in range(n)], pa.int32()),
        "s": pa.array([None if i % 6 == 0 else "é中" * (i % 4) for i in range(n)], pa.large_string()),
        "x": pa.array([None if i % 9 == 0 else bytes([i]) * (i % 8) for i in range(n)], pa.large_binary()),
    })
    for start in (0, 1, 3, 8, 13):
        part = full.slice(start, n - start - 2)
        back = rb.decode(rb.encode(part, fields, "ms"), fields, "ms")
        assert back.to_pylist() == part.to_pylist()


def test_polars_and_duckdb_data_encode_to_the_same_bytes() -> None:
    pl = pytest.importorskip("polars")
    duckdb = pytest.importorskip("duckdb")
    fields = _spec(("ts", "TIMESTAMP"), ("v", "DOUBLE"), ("s", "VARCHAR(8)"))
    batch = pa.record_batch({"ts": pa.array([1, 2, None], pa.timestamp("ms")), "v": [0.5, None, 2.0],
                             "s": ["a", "bé", None]})
    want = bytes(rb.encode(batch, fields, "ms"))
    frame = pl.from_arrow(batch)
    assert bytes(rb.encode(frame, fields, "ms")) == want
    rel = duckdb.sql("SELECT * FROM batch")  # TIMESTAMP comes back as us: the encoder scales it
    assert bytes(rb.encode(rel, fields, "ms")) == want
    with pytest.raises(DataError, match="cannot encode a list"):
        rb.encode([1, 2], fields, "ms")


def test_the_native_contract_refuses_an_array_of_another_type() -> None:
    native = rb._rb()
    plan = native.ColumnPlan(native.KINDS["fixed"], 7, 8, 8, 0, 1, 1, pa.float64())
    assert (plan.kind, plan.type_id, plan.width, plan.format) == (native.KINDS["fixed"], 7, 8, b"g")
    good = pa.record_batch({"v": pa.array([1.5], pa.float64())})
    assert native.Encoder().encode([plan], [0], good)[1] == 0
    with pytest.raises(TypeError, match="Arrow format b'i' is not the plan's b'g'"):
        native.Encoder().encode([plan], [0], pa.record_batch({"v": pa.array([1], pa.int32())}))
    with pytest.raises(TypeError, match="no child 3"):
        native.Encoder().encode([plan], [3], good)
