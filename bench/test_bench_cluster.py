"""``--cluster``: a 200-table ``taos://`` -> ``taos://`` migration (200 x 25,000 meters rows) run
in the same process without a cluster (the baseline), on a running one-node Ray cluster of this
machine's 2 CPUs, and on a head with two worker nodes of one CPU each. Opt-in: set TDETL_TEST_TAOS.

Every run writes a fresh target database, checked by COUNT(*). The one-node figure is Ray's cost
on one machine (scheduling, a worker process per share, the checkpoint actor). On this 2-core VM,
server and client share the same cores, so two worker nodes cannot be faster than one; what they
show is the per-worker rate (``rows_per_worker_s``: rows / (wall time x workers)), which is what a
cluster of separate machines would add per worker until the servers become the limit.

Going through Ray costs a fixed part per run (the checkpoint actor's process, worker processes,
each share's connections and catalog) and a part per row; ``TDETL_BENCH_CLUSTER_PER_TABLE=100000``
runs a 4x larger migration to tell them apart.

    TDETL_TEST_TAOS=taos://root:taosdata@localhost:6030 pytest bench/test_bench_cluster.py --benchmark-only
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tdetl
from tdetl.dsn import parse_dsn
from tdetl.taos.connect import open_connection
from tests.samples import PARSER, meters

SERVER = (os.environ.get("TDETL_TEST_TAOS") or "").rstrip("/")
pytestmark = pytest.mark.skipif(not SERVER, reason="no TDengine server: set TDETL_TEST_TAOS")
ray = pytest.importorskip("ray")

TABLES = 200
PER_TABLE = int(os.environ.get("TDETL_BENCH_CLUSTER_PER_TABLE", "25000"))  # 100000: a 4x larger migration
ROWS = TABLES * PER_TABLE


def _sql(*statements: str) -> Any:
    with open_connection(parse_dsn(SERVER + "/")) as conn:
        out = None
        for s in statements:
            out = conn.query(s).table() if s.startswith("SELECT") else conn.execute(s)
        return out


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = f"tdetl_bench_cl_{uuid.uuid4().hex[:8]}"
    csv = tmp_path_factory.mktemp("cluster") / "m.csv"
    meters(ROWS, tables=TABLES).write_csv(csv)
    tdetl.run(f"csv:{csv}", f"{SERVER}/{name}?assert", parser=json.dumps(PARSER))
    yield name
    _sql(f"DROP DATABASE IF EXISTS `{name}`")


def _migrate(benchmark: Any, source: str, cluster: str | None, workers: int) -> None:
    made: list[str] = []

    def setup() -> tuple[tuple[str], dict[str, Any]]:
        made.append(f"{source}_to_{len(made)}")
        return (made[-1],), {}

    def run(target: str) -> None:
        s = tdetl.run(f"{SERVER}/{source}", f"{SERVER}/{target}?assert", cluster=cluster)
        assert s.rows_written == ROWS
    try:
        benchmark.pedantic(run, setup=setup, rounds=5, warmup_rounds=0)
        for t in made:
            assert _sql(f"SELECT COUNT(*) FROM `{t}`.meters").column(0)[0].as_py() == ROWS
    finally:
        for t in made:
            _sql(f"DROP DATABASE IF EXISTS `{t}`")
    best = benchmark.stats.stats.min
    benchmark.extra_info["rows_per_s"] = round(ROWS / best)
    benchmark.extra_info["rows_per_worker_s"] = round(ROWS / best / workers)


def test_baseline_without_cluster(benchmark: Any, source: str) -> None:
    _migrate(benchmark, source, None, 1)


@pytest.fixture
def ray_cluster(request: pytest.FixtureRequest) -> Iterator[str]:
    from ray.cluster_utils import Cluster

    nodes = request.param
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2 if nodes == 0 else 0,
                                                      "object_store_memory": 100 << 20, "include_dashboard": False})
    for _ in range(nodes):
        c.add_node(num_cpus=1, object_store_memory=100 << 20)
    c.wait_for_nodes()
    ray.init(address=c.address, logging_level="WARNING", log_to_driver=False)  # joined once, as a service would be
    yield c.address
    ray.shutdown()
    c.shutdown()


@pytest.mark.parametrize("ray_cluster", [0], indirect=True, ids=["one-node"])
def test_one_node_cluster(benchmark: Any, source: str, ray_cluster: str) -> None:
    _migrate(benchmark, source, ray_cluster, 1)


@pytest.mark.parametrize("ray_cluster", [2], indirect=True, ids=["two-worker-nodes"])
def test_two_worker_nodes(benchmark: Any, source: str, ray_cluster: str) -> None:
    _migrate(benchmark, source, ray_cluster, 2)


def test_local_cluster_started_by_the_run(benchmark: Any, source: str, tmp_path: Path) -> None:
    """``--cluster local`` as a user tries it: Ray started and stopped by each run."""
    _migrate(benchmark, source, "local", 1)
