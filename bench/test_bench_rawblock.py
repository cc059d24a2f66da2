"""Raw-block codec speed, each figure with its baseline in the same run:

- the memory-speed line: numpy copying as many bytes as the encoded block into a warm buffer;
- building the same rows as SQL ``INSERT ... VALUES`` text in Python (what taospy SQL writes need);
- preparing the same columns for taos-ws-py's stmt2 binding (``taosws.*_to_column``).

    pytest bench/test_bench_rawblock.py --benchmark-only --benchmark-columns=min,median
Rates are in each result's extra_info (rows/s, GB/s of block bytes).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tdetl import rawblock as rb
from tdetl.model import Column
from tdetl.types import parse_type

N = 1_000_000
METERS = [Column(n, parse_type(t)) for n, t in
          (("ts", "TIMESTAMP"), ("current", "FLOAT"), ("voltage", "INT"), ("phase", "FLOAT"))]
CJK = "电流电压相位北京上海深圳广州杭州成都武汉西安南京天津重庆苏州"


def _meters(n: int, null_every: int = 0) -> pa.RecordBatch:
    rng = np.random.default_rng(1)

    def mask() -> np.ndarray | None:
        return (rng.random(n) < 0.1) if null_every else None
    ts = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * 1000
    return pa.record_batch({
        "ts": pa.array(ts, pa.timestamp("ms")),
        "current": pa.array(rng.uniform(8, 14, n).astype(np.float32), mask=mask()),
        "voltage": pa.array(rng.integers(205, 235, n, dtype=np.int32), mask=mask()),
        "phase": pa.array(rng.uniform(0.2, 0.4, n).astype(np.float32), mask=mask()),
    })


@pytest.fixture(scope="module")
def meters() -> pa.RecordBatch:
    return _meters(N)


@pytest.fixture(scope="module")
def meters_nulls() -> pa.RecordBatch:
    return _meters(N, null_every=10)


def _rate(benchmark, rows: int, nbytes: int) -> None:
    best = benchmark.stats.stats.min
    benchmark.extra_info.update(rows=rows, rows_per_s=rows / best, gb_per_s=nbytes / best / 1e9)


def _encode(benchmark, batch: pa.RecordBatch, fields: list[Column]) -> int:
    enc = rb.Encoder(1 << 26)
    size = len(rb.encode(batch, fields, "ms", enc))  # warm the reused buffer
    benchmark.pedantic(rb.encode, args=(batch, fields, "ms", enc), rounds=20, warmup_rounds=2)
    _rate(benchmark, batch.num_rows, size)
    return size


def _decode(benchmark, batch: pa.RecordBatch, fields: list[Column]) -> None:
    block = bytes(rb.encode(batch, fields, "ms"))
    out = benchmark.pedantic(rb.decode, args=(block, fields, "ms"), rounds=20, warmup_rounds=2)
    assert out.num_rows == batch.num_rows
    _rate(benchmark, batch.num_rows, len(block))


def test_copy_baseline_meters(benchmark, meters: pa.RecordBatch) -> None:
    size = len(rb.encode(meters, METERS, "ms"))
    src, dst = np.ones(size, np.uint8), np.zeros(size, np.uint8)
    benchmark.pedantic(np.copyto, args=(dst, src), rounds=20, warmup_rounds=2)
    _rate(benchmark, N, size)


def test_encode_meters(benchmark, meters: pa.RecordBatch) -> None:
    _encode(benchmark, meters, METERS)


def test_decode_meters(benchmark, meters: pa.RecordBatch) -> None:
    _decode(benchmark, meters, METERS)


def test_encode_meters_10pct_nulls(benchmark, meters_nulls: pa.RecordBatch) -> None:
    _encode(benchmark, meters_nulls, METERS)


def test_decode_meters_10pct_nulls(benchmark, meters_nulls: pa.RecordBatch) -> None:
    _decode(benchmark, meters_nulls, METERS)


def _strings(kind: str) -> tuple[pa.RecordBatch, list[Column]]:
    rng = np.random.default_rng(2)
    lengths = rng.integers(0, 25, N)
    if kind == "VARCHAR(24)":
        pool = ["".join(chr(97 + (i * 7 + j) % 26) for j in range(24)) for i in range(64)]
    else:
        pool = [(CJK * 2)[i % len(CJK): i % len(CJK) + 24] for i in range(64)]
    vals = [pool[i % 64][: lengths[i]] for i in range(N)]
    fields = [Column("ts", parse_type("TIMESTAMP")), Column("s", parse_type(kind))]
    batch = pa.record_batch({"ts": pa.array(np.arange(N), pa.timestamp("ms")), "s": pa.array(vals)})
    return batch, fields


def test_encode_varchar24(benchmark) -> None:
    _encode(benchmark, *_strings("VARCHAR(24)"))


def test_decode_varchar24(benchmark) -> None:
    _decode(benchmark, *_strings("VARCHAR(24)"))


def test_encode_nchar24_cjk(benchmark) -> None:
    _encode(benchmark, *_strings("NCHAR(24)"))


def test_decode_nchar24_cjk(benchmark) -> None:
    _decode(benchmark, *_strings("NCHAR(24)"))


WIDE = [Column(n, parse_type(t)) for n, t in (
    ("ts", "TIMESTAMP"), ("b", "BOOL"), ("i8", "TINYINT"), ("i16", "SMALLINT"), ("i32", "INT"),
    ("i64", "BIGINT"), ("u8", "TINYINT UNSIGNED"), ("u16", "SMALLINT UNSIGNED"), ("u32", "INT UNSIGNED"),
    ("u64", "BIGINT UNSIGNED"), ("f32", "FLOAT"), ("f64", "DOUBLE"), ("vc", "VARCHAR(16)"),
    ("nc", "NCHAR(8)"), ("vb", "VARBINARY(8)"), ("d64", "DECIMAL(10,2)"), ("d128", "DECIMAL(30,6)"))]


@pytest.fixture(scope="module")
def wide() -> pa.RecordBatch:
    n = 200_000
    rng = np.random.default_rng(3)
    cols = {}
    for c in WIDE:
        at = c.type.arrow("ms")
        if c.name == "ts":
            cols[c.name] = pa.array(np.arange(n), at)
        elif c.type.name == "BOOL":
            cols[c.name] = pa.array(rng.random(n) < 0.5)
        elif c.type.name in ("VARCHAR", "NCHAR", "VARBINARY"):
            pool = pa.array(["tdetl", "数据", "", "abcdefgh"], at if c.type.name != "VARBINARY" else pa.string())
            cols[c.name] = pool.take(pa.array(rng.integers(0, 4, n))).cast(at)
        elif c.type.name == "DECIMAL":
            cols[c.name] = pa.array(rng.integers(-10**8, 10**8, n)).cast(pa.decimal128(38, 0)).cast(at)
        else:
            cols[c.name] = pa.array(rng.integers(0, 100, n)).cast(at)
    return pa.record_batch(cols)


def test_encode_wide_all_types(benchmark, wide: pa.RecordBatch) -> None:
    _encode(benchmark, wide, WIDE)


def test_decode_wide_all_types(benchmark, wide: pa.RecordBatch) -> None:
    _decode(benchmark, wide, WIDE)


# ---- baselines: what the other write paths must do with the same rows ---------------------------

def _sql_text(batch: pa.RecordBatch) -> str:
    ts = batch.column(0).cast(pa.int64()).to_pylist()
    cur, volt, ph = (batch.column(i).to_pylist() for i in (1, 2, 3))
    values = " ".join(f"({t},{c},{v},{p})" for t, c, v, p in zip(ts, cur, volt, ph))
    return "INSERT INTO d0 VALUES " + values


def test_baseline_sql_insert_text(benchmark, meters: pa.RecordBatch) -> None:
    part = meters.slice(0, 200_000)
    sql = benchmark.pedantic(_sql_text, args=(part,), rounds=3, warmup_rounds=1)
    assert sql.count("(") == part.num_rows
    _rate(benchmark, part.num_rows, len(sql))


def test_baseline_taosws_stmt2_columns(benchmark, meters: pa.RecordBatch) -> None:
    taosws = pytest.importorskip("taosws", reason="taos-ws-py (extra 'taos') is not installed")

    def prepare(batch: pa.RecordBatch) -> list:
        return [
            taosws.millis_timestamps_to_column(batch.column(0).cast(pa.int64()).to_pylist()),
            taosws.floats_to_column(batch.column(1).to_pylist()),
            taosws.ints_to_column(batch.column(2).to_pylist()),
            taosws.floats_to_column(batch.column(3).to_pylist()),
        ]
    part = meters.slice(0, 200_000)
    benchmark.pedantic(prepare, args=(part,), rounds=3, warmup_rounds=1)
    _rate(benchmark, part.num_rows, part.nbytes)


# ---- per-call cost: many small blocks (one per child table, as a many-tables restore sends) ------

SMALL = 100


def _encode_small(batches: list[pa.RecordBatch], fields: list[Column], enc: object) -> int:
    return sum(len(rb.encode(b, fields, "ms", enc)) for b in batches)


def test_encode_meters_100_row_blocks(benchmark, meters: pa.RecordBatch) -> None:
    batches = [meters.slice(i, SMALL) for i in range(0, 100_000, SMALL)]
    enc = rb.Encoder(1 << 20)
    size = _encode_small(batches, METERS, enc)
    benchmark.pedantic(_encode_small, args=(batches, METERS, enc), rounds=10, warmup_rounds=2)
    _rate(benchmark, 100_000, size)
    benchmark.extra_info["blocks_per_s"] = len(batches) / benchmark.stats.stats.min


def test_decode_meters_100_row_blocks(benchmark, meters: pa.RecordBatch) -> None:
    blocks = [bytes(rb.encode(meters.slice(i, SMALL), METERS, "ms")) for i in range(0, 100_000, SMALL)]
    out = benchmark.pedantic(lambda: [rb.decode(b, METERS, "ms") for b in blocks], rounds=10, warmup_rounds=2)
    assert sum(b.num_rows for b in out) == 100_000
    _rate(benchmark, 100_000, sum(map(len, blocks)))
    benchmark.extra_info["blocks_per_s"] = len(blocks) / benchmark.stats.stats.min
