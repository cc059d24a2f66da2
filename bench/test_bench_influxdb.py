"""InfluxDB 1.x -> ``local:`` backup, points/s from the local influxd (200k points, 10 series, four
fields), against the bare transfer of the same rows in the same run: the chunked ``/query`` stream
read with urllib and decoded with ``json.loads`` per chunk, nothing else.

    pytest bench/test_bench_influxdb.py --benchmark-only --benchmark-columns=min,median
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

import tdetl
from tests.services import Influxd, influxd  # noqa: F401 - the influxd fixture

N = 200_000
T0 = 1_700_000_000 * 10**9
BEGIN, END = "2023-11-14T22:00:00Z", "2023-11-18T00:00:00Z"


@pytest.fixture(scope="module")
def db(influxd: Influxd) -> str:  # noqa: F811
    name = f"b{uuid.uuid4().hex[:8]}"
    influxd.query(f"CREATE DATABASE {name}")
    for start in range(0, N, 20_000):
        influxd.write(name, [f"meters,dev=d{i % 10},loc=sf current={10 + i % 7 / 3:.3f},voltage={200 + i % 30}i,"
                             f"phase=0.25,ok=true {T0 + i * 10**9}" for i in range(start, start + 20_000)])
    return name


def test_influxdb_to_local(benchmark: Any, influxd: Influxd, db: str) -> None:  # noqa: F811
    out = Path(tempfile.mkdtemp(prefix="tdetl-bench-"))

    def run() -> Any:
        shutil.rmtree(out, ignore_errors=True)
        url = (f"influxdb+http://127.0.0.1:{influxd.port}/?version=1.6&bucket={db}&beginTime={BEGIN}"
               f"&endTime={END}&readWindow=D")
        return tdetl.run(url, f"local:{out}")

    s = benchmark.pedantic(run, rounds=3, warmup_rounds=0)
    assert s.rows_written == N
    shutil.rmtree(out, ignore_errors=True)
    benchmark.extra_info["points_per_s"] = round(N / benchmark.stats.stats.min)


def test_influxdb_baseline_bare_chunked_read(benchmark: Any, influxd: Influxd, db: str) -> None:  # noqa: F811
    q = f"SELECT * FROM meters WHERE time >= {T0 - 10**12} AND time < {T0 + 10**15} GROUP BY *"
    url = f"{influxd.url}/query?" + urllib.parse.urlencode(
        {"db": db, "q": q, "epoch": "ns", "chunked": "true", "chunk_size": "10000"})

    def read() -> int:
        n = 0
        with urllib.request.urlopen(url) as resp:
            for line in resp:
                for res in json.loads(line)["results"]:
                    n += sum(len(s["values"]) for s in res.get("series", []))
        return n

    assert benchmark.pedantic(read, rounds=3, warmup_rounds=0) == N
    benchmark.extra_info["points_per_s"] = round(N / benchmark.stats.stats.min)
