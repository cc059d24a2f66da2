"""TDengine ingest, backup and restore (opt-in: set TDETL_TEST_TAOS=taos://root:taosdata@host:6030).

20 child tables x 50,000 meters rows (ts, current FLOAT, voltage INT, phase FLOAT; tags groupid
INT, location VARCHAR(24)), written in the same run through:
- tdetl's raw-block path (the ``taos`` target; native or WebSocket per the env var),
- taospy SQL text (``INSERT INTO t VALUES (...) ...`` built in Python, 1 MB statements),
- taospy stmt binding (``new_multi_binds`` per table),
in process, one client path against another. Whole-process ingest, backup, restore and sync against
taosBenchmark and taosdump are in ``bench/throughput.py``.

    TDETL_TEST_TAOS=taos://root:taosdata@localhost:6030 pytest bench/test_bench_taos.py --benchmark-only
Rates are in each result's extra_info (rows/s).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from tdetl.drivers.taos.sink import TaosSink
from tdetl.dsn import parse_dsn
from tdetl.model import Catalog, Column, Database, SuperTable, TableBatch, TableSpec
from tdetl.pipeline import Options
from tdetl.taos.connect import open_connection
from tdetl.taos.stmt import MAX_ROWS as STMT_ROWS

from .conftest import COLUMNS, ROWS, TAGS

SERVER = (os.environ.get("TDETL_TEST_TAOS") or os.environ.get("TDETL_TEST_TAOSWS") or "").rstrip("/")
pytestmark = pytest.mark.skipif(not SERVER,
                                reason="no TDengine server: set TDETL_TEST_TAOS=taos://root:taosdata@host:6030")


def _rate(benchmark: Any, rows: int) -> None:
    benchmark.extra_info["rows_per_s"] = round(rows / benchmark.stats.stats.min)


@pytest.fixture(scope="module")
def db() -> Iterator[str]:
    name = f"tdetl_bench_{uuid.uuid4().hex[:8]}"
    yield name
    with open_connection(parse_dsn(SERVER + "/")) as conn:
        for suffix in ("", "_sql", "_stmt", "_restored", "_dump", "_blob", "_blob2"):
            conn.execute(f"DROP DATABASE IF EXISTS `{name}{suffix}`")


def _catalog(db: str) -> Catalog:
    cat = Catalog({db: Database(db, "ms")})
    cat.stables[(db, "meters")] = SuperTable(db, "meters", COLUMNS, TAGS, "ms")
    return cat


def test_ingest_raw_blocks(benchmark: Any, data: list[TableBatch], db: str) -> None:
    sink = TaosSink(parse_dsn(f"{SERVER}/{db}?assert"), Options())
    sink.prepare(_catalog(db))
    sink._ensure_tables([b.spec.replace(database=db) for b in data])  # DDL outside the timing

    def write() -> None:
        for b in data:
            sink.write(b)
        sink.flush()

    benchmark.pedantic(write, rounds=3, warmup_rounds=1)
    sink.close()
    _rate(benchmark, ROWS)
    with open_connection(parse_dsn(SERVER + "/"), db) as conn:
        assert conn.query("SELECT COUNT(*) FROM meters").table().column(0).to_pylist() == [ROWS]


def _taospy(db: str) -> Any:
    taos = pytest.importorskip("taos", reason="taospy needs the native client library")
    dsn = parse_dsn(SERVER + "/")
    if dsn.protocol:
        pytest.skip("the taospy baselines need a native taos:// server")
    conn = taos.connect(host=dsn.host or "localhost", user=dsn.user or "root",
                        password=dsn.password or "taosdata", port=dsn.port or 6030)
    conn.execute(f"CREATE DATABASE IF NOT EXISTS `{db}`")
    conn.select_db(db)
    conn.execute("CREATE STABLE IF NOT EXISTS meters (ts TIMESTAMP, current FLOAT, voltage INT, phase FLOAT)"
                 " TAGS (groupid INT, location VARCHAR(24))")
    return taos, conn


def _create_children(conn: Any, data: list[TableBatch]) -> None:
    for b in data:
        g, loc = b.spec.tag_values
        conn.execute(f"CREATE TABLE IF NOT EXISTS `{b.spec.name}` USING meters TAGS ({g}, '{loc}')")


def test_baseline_taospy_sql_text(benchmark: Any, data: list[TableBatch], db: str) -> None:
    _, conn = _taospy(db + "_sql")
    _create_children(conn, data)
    tables = [(b.spec.name, b.data.column(0).cast(pa.int64()).to_pylist(),
               *(c.to_pylist() for c in b.data.columns[1:])) for b in data]

    def write() -> None:
        for name, ts, cur, volt, ph in tables:
            parts, size = [], 0
            for row in zip(ts, cur, volt, ph):
                text = f"({row[0]},{row[1]},{row[2]},{row[3]})"
                parts.append(text)
                size += len(text)
                if size > 1_000_000:
                    conn.execute(f"INSERT INTO `{name}` VALUES " + " ".join(parts))
                    parts, size = [], 0
            if parts:
                conn.execute(f"INSERT INTO `{name}` VALUES " + " ".join(parts))

    benchmark.pedantic(write, rounds=1, warmup_rounds=0)
    _rate(benchmark, ROWS)
    conn.close()


def test_baseline_taospy_stmt(benchmark: Any, data: list[TableBatch], db: str) -> None:
    taos, conn = _taospy(db + "_stmt")
    _create_children(conn, data)
    tables = [(b.spec.name, b.data.column(0).cast(pa.int64()).to_pylist(),
               *(c.to_pylist() for c in b.data.columns[1:])) for b in data]

    def write() -> None:
        stmt = conn.statement("INSERT INTO ? VALUES (?, ?, ?, ?)")
        for name, ts, cur, volt, ph in tables:
            stmt.set_tbname(name)
            for i in range(0, len(ts), STMT_ROWS):  # stmt binds at most 32767 rows at once
                params = taos.new_multi_binds(4)
                params[0].timestamp(ts[i:i + STMT_ROWS])
                params[1].float(cur[i:i + STMT_ROWS])
                params[2].int(volt[i:i + STMT_ROWS])
                params[3].float(ph[i:i + STMT_ROWS])
                stmt.bind_param_batch(params)
                stmt.execute()
        stmt.close()

    benchmark.pedantic(write, rounds=1, warmup_rounds=0)
    _rate(benchmark, ROWS)
    conn.close()


BLOB_ROWS, BLOB_BYTES = 20_000, 1024


@pytest.fixture(scope="module")
def blobs() -> list[TableBatch]:
    """One child table of 20,000 rows with a 1 KiB BLOB each (BLOB goes as SQL text: raw blocks of
    BLOB crash TDengine 3.3.7.5's client, and stmt cannot bind it)."""
    import numpy as np

    from tdetl.types import parse_type

    rng = np.random.default_rng(3)
    payload = rng.integers(0, 256, BLOB_ROWS * BLOB_BYTES, dtype=np.uint8).tobytes()
    values = pa.Array.from_buffers(pa.binary(), BLOB_ROWS, [None, pa.py_buffer(
        np.arange(0, (BLOB_ROWS + 1) * BLOB_BYTES, BLOB_BYTES, dtype=np.int32).tobytes()), pa.py_buffer(payload)])
    cols = (COLUMNS[0], Column("b", parse_type("BLOB")))
    spec = TableSpec("blob0", cols, None, "blobs", (TAGS[0],), (1,), "ms")
    ts = pa.array(np.arange(1_700_000_000_000, 1_700_000_000_000 + BLOB_ROWS), pa.int64()).cast(pa.timestamp("ms"))
    return [TableBatch(spec, pa.RecordBatch.from_arrays([ts, values], schema=spec.schema))]


def test_blob_as_sql_text(benchmark: Any, blobs: list[TableBatch], db: str) -> None:
    cat = Catalog({db: Database(db, "ms")})
    spec = blobs[0].spec
    cat.stables[(db, "blobs")] = SuperTable(db, "blobs", spec.columns, spec.tags, "ms")
    sink = TaosSink(parse_dsn(f"{SERVER}/{db}_blob?assert"), Options())
    sink.prepare(cat)
    sink._ensure_tables([spec.replace(database=db)])

    def write() -> None:
        sink.write(blobs[0])
        sink.flush()

    benchmark.pedantic(write, rounds=3, warmup_rounds=0)
    sink.close()
    _rate(benchmark, BLOB_ROWS)


def test_baseline_blob_taospy_stmt2(benchmark: Any, blobs: list[TableBatch], db: str) -> None:
    _, conn = _taospy(db + "_blob2")
    conn.execute("CREATE STABLE IF NOT EXISTS blobs (ts TIMESTAMP, b BLOB) TAGS (groupid INT)")
    data = blobs[0].data
    ts, values = data.column(0).cast(pa.int64()).to_pylist(), data.column(1).to_pylist()

    def write() -> None:
        stmt = conn.statement2("INSERT INTO ? USING blobs TAGS (?) VALUES (?, ?)")
        for i in range(0, BLOB_ROWS, 5000):
            stmt.bind_param(["blob0"], [[1]], [[ts[i:i + 5000], values[i:i + 5000]]])
            stmt.execute()
        stmt.close()

    benchmark.pedantic(write, rounds=3, warmup_rounds=0)
    _rate(benchmark, BLOB_ROWS)
    conn.close()
