"""JSON messages -> typed Arrow batch, 200k meters payloads of the seed's MQTT example shape
(``{"ts":..,"id":..,"voltage":..,"current":..,"phase":..,"data":{"loc":..}}``, with a JSON path):
tdetl's batch parser (decode, extract, cast, map to the model's columns) against a per-message
``json.loads`` + column-building loop into Arrow, in the same run.

    pytest bench/test_bench_messages.py --benchmark-only --benchmark-columns=min,median
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest

from tdetl.quality import Rejects
from tdetl.transform.messages import MessageParser, Messages
from tdetl.transform.parser import load_parser

N = 200_000
PARSER = {"parse": {"payload": {"json": [
    {"name": "ts", "cast": "TIMESTAMP(ms)"}, {"name": "id", "cast": "INT"},
    {"name": "voltage", "cast": "INT"}, {"name": "current", "cast": "FLOAT"}, {"name": "phase", "cast": "FLOAT"},
    {"name": "$.data.loc", "alias": "loc", "cast": "VARCHAR(24)"},
]}}, "model": {"name": "d_{id}", "using": "meters", "tags": ["id", "loc"],
               "columns": ["ts", "current", "voltage", "phase"]}}


@pytest.fixture(scope="module")
def messages() -> Messages:
    payloads = [json.dumps({"ts": 1_700_000_000_000 + i, "id": i % 100, "voltage": 200 + i % 30,
                            "current": round(10 + (i % 7) / 3, 3), "phase": 0.25,
                            "data": {"loc": f"California.{i % 10}"}}).encode() for i in range(N)]
    return Messages(payloads, ["meters"] * N, [0] * N, list(range(N)), [None] * N, [0] * N)


def _rate(benchmark: Any) -> None:
    benchmark.extra_info["messages_per_s"] = round(N / benchmark.stats.stats.min)


def test_batch_parser(benchmark: Any, messages: Messages) -> None:
    parser = MessageParser(load_parser(json.dumps(PARSER)), None, "bench")
    rejects = Rejects()
    out = benchmark.pedantic(parser.parse, args=(messages, rejects, "p", 1), rounds=5, warmup_rounds=1)
    assert sum(b.num_rows for b in out) == N and rejects.failed == 0
    _rate(benchmark)


def test_baseline_json_loads_loop(benchmark: Any, messages: Messages) -> None:
    def loop(msgs: Messages) -> pa.RecordBatch:
        cols: dict[str, list[Any]] = {k: [] for k in ("ts", "id", "voltage", "current", "phase", "loc")}
        for p in msgs.payloads:
            d = json.loads(p)
            cols["ts"].append(d["ts"])
            cols["id"].append(d["id"])
            cols["voltage"].append(d["voltage"])
            cols["current"].append(d["current"])
            cols["phase"].append(d["phase"])
            cols["loc"].append(d["data"]["loc"])
        return pa.record_batch([pa.array(cols["ts"], pa.timestamp("ms")), pa.array(cols["id"], pa.int32()),
                                pa.array(cols["voltage"], pa.int32()), pa.array(cols["current"], pa.float32()),
                                pa.array(cols["phase"], pa.float32()), pa.array(cols["loc"], pa.string())],
                               names=list(cols))

    out = benchmark.pedantic(loop, args=(messages,), rounds=3, warmup_rounds=1)
    assert out.num_rows == N
    _rate(benchmark)


def test_batch_parser_with_transforms(benchmark: Any, messages: Messages) -> None:
    """The same, plus a split, a filter keeping every row, and three mapping rules (expr, format,
    generator now): what the transform rules cost on top of test_batch_parser."""
    cfg = json.loads(json.dumps(PARSER))
    cfg["transform"] = [{"split": "loc", "separator": ".", "count": 2},
                        {"filter": "voltage >= 200 && starts_with(loc_1, 'Cal')"}]
    cfg["model"]["tags"] = ["id", "loc_1", "loc_2"]
    cfg["model"]["columns"] = ["ts", "current", "voltage", "phase", "power", "label", "at"]
    cfg["model"]["mapping"] = {"power": {"expr": "round(current * voltage * sqrt(3), 2)"},
                               "label": {"format": "${loc_2}-${pad(id, 3, '0')}"}, "at": {"generator": "now"}}
    parser = MessageParser(load_parser(json.dumps(cfg)), None, "bench")
    rejects = Rejects()
    out = benchmark.pedantic(parser.parse, args=(messages, rejects, "p", 1), rounds=5, warmup_rounds=1)
    assert sum(b.num_rows for b in out) == N and rejects.failed == 0 and rejects.filtered == 0
    _rate(benchmark)
