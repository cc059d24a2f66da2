"""OPC UA -> ``local:``: data-change notifications/s from a real asyncua server (100 Double nodes
written every 20 ms for 6 s), against a bare asyncua subscription client counting the same
notifications in the same run. Both are bound by the Python server on the same two cores; the ratio
shows what tdetl's collection, batching and writing cost on top of the client library.

    pytest bench/test_bench_opcua.py --benchmark-only --benchmark-columns=min
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

import tdetl
from tests.services import OpcUaServers, free_port, opcua  # noqa: F401 - the opcua fixture

VARS, SECONDS = 100, 6.0
CONFIG = {"stable_prefix": "bench", "column_configs": [
    {"column_name": "received_time", "column_alias": "ts", "is_primary_key": True},
    {"column_name": "original_time", "column_alias": "src_ts"},
    {"column_name": "value", "column_alias": "v"}, {"column_name": "quality", "column_alias": "q"}]}


def _server(servers: OpcUaServers) -> int:
    port = free_port()
    servers.start(port, "--samples", "0", "--bulk", str(VARS), "--bulk-period", "0.02", "--bulk-seconds",
                  str(SECONDS), "--wait-subscriber")
    return port


def _written(servers: OpcUaServers) -> int:
    rounds = [w for w in servers.written() if "bulk_rounds" in w]
    return rounds[-1]["bulk_rounds"] * VARS


def test_opcua_to_local(benchmark: Any, opcua: OpcUaServers) -> None:  # noqa: F811
    out = Path(tempfile.mkdtemp(prefix="tdetl-bench-"))
    nodes = ",".join(f"ns=2;s=Plant.Bulk.v{i}::b{i}" for i in range(VARS))

    def run() -> Any:
        port = _server(opcua)
        shutil.rmtree(out, ignore_errors=True)
        url = (f"opcua://127.0.0.1:{port}?ua.nodes={nodes}&opc_table_config={json.dumps(CONFIG)}"
               f"&interval=0.1&batch_size=5000&batch_timeout=1&timeout=2s")
        return tdetl.run(url, f"local:{out}")

    s = benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    check = out.parent / (out.name + ".duckdb")
    tdetl.run(f"local:{out}", f"duckdb:{check}")
    with duckdb.connect(str(check)) as con:
        n, span = con.execute("SELECT count(*), epoch_us(max(ts)) - epoch_us(min(ts)) FROM bench_double"
                              " WHERE v > 0").fetchone()
    shutil.rmtree(out, ignore_errors=True)
    check.unlink()
    assert s.rows_written == n + VARS  # every notification, plus each node's value when subscribed
    benchmark.extra_info["notifications"] = n
    benchmark.extra_info["written_by_server"] = _written(opcua)
    benchmark.extra_info["notifications_per_s"] = round(n / (span / 1e6))


def test_opcua_baseline_bare_subscription(benchmark: Any, opcua: OpcUaServers) -> None:  # noqa: F811
    from asyncua import Client, ua

    async def count(port: int) -> tuple[int, float]:
        arrivals: list[float] = []

        class Handler:
            def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
                if val > 0:
                    arrivals.append(time.monotonic())

        async with Client(f"opc.tcp://127.0.0.1:{port}/", timeout=10) as client:
            sub = await client.create_subscription(ua.CreateSubscriptionParameters(
                RequestedPublishingInterval=100, RequestedLifetimeCount=10_000, RequestedMaxKeepAliveCount=10,
                MaxNotificationsPerPublish=0, PublishingEnabled=True, Priority=0), Handler())
            nodes = [client.get_node(f"ns=2;s=Plant.Bulk.v{i}") for i in range(VARS)]
            await sub.subscribe_data_change(nodes, sampling_interval=0, queuesize=100)
            idle_since = time.monotonic()
            seen = 0
            while time.monotonic() - idle_since < 2.0:
                await asyncio.sleep(0.05)
                if len(arrivals) != seen:
                    seen, idle_since = len(arrivals), time.monotonic()
        return len(arrivals), arrivals[-1] - arrivals[0]

    def run() -> tuple[int, float]:
        return asyncio.run(count(_server(opcua)))

    n, span = benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    benchmark.extra_info["notifications"] = n
    benchmark.extra_info["written_by_server"] = _written(opcua)
    benchmark.extra_info["notifications_per_s"] = round(n / span)
