"""Client-side cost of the taos target, without a server (runs everywhere): the 20 x 50,000 meters
rows through TaosSink into a connection that only takes the blocks, i.e. the ceiling our side puts
on raw-block ingest, against building the same rows as INSERT text (the REST / SQL path).

    pytest bench/test_bench_taos_client.py --benchmark-only --benchmark-columns=min,median
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tdetl.drivers.taos.sink import TaosSink
from tdetl.dsn import parse_dsn
from tdetl.model import Column, TableBatch
from tdetl.pipeline import Options
from tdetl.taos.conn import Connection, Result
from tdetl.taos.insert import insert_statements, value_rows

from .conftest import ROWS


class Discard(Connection):
    """Takes raw blocks and counts them (what the server would receive)."""

    def __init__(self) -> None:
        self.bytes = 0

    def query(self, sql: str) -> Result:
        return Result()

    def write_block(self, table: str, block: Any, fields: Sequence[Column] | None) -> None:
        self.bytes += len(block)

    def close(self) -> None:
        pass


def _rate(benchmark: Any, rows: int) -> None:
    benchmark.extra_info["rows_per_s"] = round(rows / benchmark.stats.stats.min)


def test_sink_raw_block_client_side(benchmark: Any, data: list[TableBatch]) -> None:
    sink = TaosSink(parse_dsn("taos+ws://h:6041/db"), Options())
    sink.conn = Discard()
    sink.tables = {b.spec.name for b in data}
    sink.stables = {"meters": None}  # type: ignore[dict-item] - created already

    def write() -> None:
        for b in data:
            sink.write(b)
        sink.flush()

    benchmark.pedantic(write, rounds=10, warmup_rounds=2)
    _rate(benchmark, ROWS)
    assert sink.conn.bytes > ROWS * 16


def test_baseline_insert_text(benchmark: Any, data: list[TableBatch]) -> None:
    def build() -> int:
        items = ((b.spec.name, b.spec.columns, value_rows(b.data, b.spec.columns, "ms")) for b in data)
        return sum(len(s) for s in insert_statements(items, 1_000_000))

    benchmark.pedantic(build, rounds=2, warmup_rounds=0)
    _rate(benchmark, ROWS)
