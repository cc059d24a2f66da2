"""``--cluster``: a run's partitions as Ray tasks on a real local Ray cluster (a head with no CPUs
and two worker nodes, so every task runs on a worker node) against the bundled TDengine: a
200-table migration (by query and by TMQ), CSV files, Kafka partitions through two consumers, a worker killed with -9
mid-run, and the Ray client (``ray://``) from the CLI. Rows are checked with SQL on the server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tdetl
from tdetl.errors import ClusterError
from tdetl.samples import PARSER, meters

from .conftest import Background, run_cli
from .services import free_port, missing
from .taos_helpers import SERVERS, pytestmark, scalar, sql  # noqa: F401 - pytestmark marks and skips

TABLES = 200


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        missing("ray (pip install 'tdetl[ray]')")
    client_port = free_port()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 80 << 20,
                                                      "ray_client_server_port": client_port,
                                                      "include_dashboard": False})
    for _ in range(2):
        c.add_node(num_cpus=2, object_store_memory=80 << 20)
    c.wait_for_nodes()
    c.client_port = client_port
    yield c
    import ray

    ray.shutdown()  # a run that failed mid-way may have left this process connected
    c.shutdown()


def _source(server: str, db: str, rows: int, tmp_path: Path) -> None:
    """``TABLES`` child tables of ``rows`` rows each (loaded without a cluster)."""
    meters(TABLES * rows, tables=TABLES).write_csv(tmp_path / "src.csv")
    tdetl.run(f"csv:{tmp_path / 'src.csv'}", f"{server}/{db}?assert", parser=json.dumps(PARSER))


def test_a_200_table_migration_is_exact(cluster: Any, scratch: Any, tmp_path: Path) -> None:
    server = SERVERS[0]
    src, dst = scratch("tdetl_cl_src"), scratch("tdetl_cl_dst")
    _source(server, src, 100, tmp_path)
    s = tdetl.run(f"{server}/{src}", f"{server}/{dst}?assert", cluster=cluster.address)
    assert s.rows_written == TABLES * 100 and s.tables == TABLES
    assert scalar(server, "SELECT COUNT(*) FROM meters", db=dst) == TABLES * 100
    assert scalar(server, f"SELECT COUNT(*) FROM information_schema.ins_tables WHERE db_name = '{dst}'") == TABLES
    assert tdetl.verify(f"{server}/{src}", f"{server}/{dst}")["differences"] == []
    # the same database through a TMQ subscription: two consumers of one group, each a share
    tmq_dst = scratch("tdetl_cl_tmq")
    s = tdetl.run(f"{server.replace('taos', 'tmq', 1)}/{src}?timeout=2s", f"{server}/{tmq_dst}?assert", jobs=2,
                  cluster=cluster.address)
    assert s.rows_written == TABLES * 100
    assert tdetl.verify(f"{server}/{src}", f"{server}/{tmq_dst}")["differences"] == []


def test_csv_files_to_tdengine(cluster: Any, scratch: Any, tmp_path: Path) -> None:
    server = SERVERS[0]
    db = scratch("tdetl_cl_csv")
    for i in range(6):  # each file its own hours, so no row overwrites another
        meters(5_000, tables=10, start_ms=1_700_000_000_000 + i * 3_600_000, seed=i).write_csv(tmp_path / f"m{i}.csv")
    s = tdetl.run(f"csv:{tmp_path}/*.csv", f"{server}/{db}?assert", parser=json.dumps(PARSER),
                  cluster=cluster.address)
    assert s.rows_written == 30_000 and s.tables == 10
    assert scalar(server, "SELECT COUNT(*) FROM meters", db=db) == 30_000
    assert scalar(server, "SELECT SUM(voltage) FROM meters", db=db) == sum(
        int(meters(5_000, tables=10, seed=i)["voltage"].sum()) for i in range(6))


def test_kafka_partitions_through_two_consumers(cluster: Any, tansu: Any, scratch: Any) -> None:
    from .test_kafka import JSON_PARSER, _produce, _reading, _topic

    server = SERVERS[0]
    db = scratch("tdetl_cl_kafka")
    topic = _topic(tansu, 4)
    _produce(tansu, topic, [_reading(i) for i in range(2000)])
    s = tdetl.run(f"kafka://{tansu.bootstrap}?topics={topic}&group=cl{os.getpid()}&session_timeout=2s&timeout=3s",
                  f"{server}/{db}?assert", parser=json.dumps(JSON_PARSER), jobs=2, cluster=cluster.address)
    assert s.rows_written == 2000
    ids = [r[0] for r in _rows(server, db, "SELECT id FROM readings ORDER BY id")]
    assert ids == list(range(2000))


def _rows(server: str, db: str, query: str) -> list[tuple[Any, ...]]:
    from .taos_helpers import taospy_rows

    return taospy_rows(db, query)


def _count(server: str, db: str) -> int:
    try:
        return int(scalar(server, "SELECT COUNT(*) FROM meters", db=db) or 0)
    except Exception:  # not created yet
        return 0


def _running_shares() -> list[int]:
    """Worker processes running a share now (Ray titles them after the function they run)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "ray::run_share" in line]


def test_a_worker_killed_mid_run_is_retried_and_rows_are_exact(cluster: Any, scratch: Any, tmp_path: Path) -> None:
    server = SERVERS[0]
    src, dst = scratch("tdetl_cl_kill"), scratch("tdetl_cl_killed")
    _source(server, src, 2000, tmp_path)
    run = Background(f"{server}/{src}", f"{server}/{dst}?assert", batch_rows=200, cluster=cluster.address)
    killed: list[int] = []
    end = time.monotonic() + 120
    while not killed and time.monotonic() < end and run.thread.is_alive():
        if _count(server, dst) > 0:  # shares are writing
            for pid in _running_shares():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.05)
    assert killed, "no share was running to kill"
    s = run.join(300)
    assert s.outcomes.get("task retried after its worker died", 0) >= 1
    assert scalar(server, "SELECT COUNT(*) FROM meters", db=dst) == TABLES * 2000
    assert tdetl.verify(f"{server}/{src}", f"{server}/{dst}")["differences"] == []


def test_the_ray_client_from_the_cli(cluster: Any, scratch: Any, tmp_path: Path) -> None:
    server = SERVERS[0]
    db = scratch("tdetl_cl_client")
    meters(2_000, tables=4).write_csv(tmp_path / "m.csv")
    r = run_cli("run", "-f", f"csv:{tmp_path / 'm.csv'}", "-t", f"{server}/{db}?assert", "--parser",
                json.dumps(PARSER), "--cluster", f"ray://127.0.0.1:{cluster.client_port}", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "wrote 2,000 rows" in r.stderr and "taosdata" not in r.stderr
    assert scalar(server, "SELECT COUNT(*) FROM meters", db=db) == 2_000


def test_serve_runs_its_tasks_on_the_cluster(cluster: Any, scratch: Any, tmp_path: Path) -> None:
    from .test_serve import Service

    server = SERVERS[0]
    db = scratch("tdetl_cl_serve")
    for i in range(3):
        meters(1_000, tables=5, start_ms=1_700_000_000_000 + i * 3_600_000, seed=i).write_csv(tmp_path / f"m{i}.csv")
    s = Service(tmp_path / "data", extra=("--cluster", cluster.address)).start()
    try:
        r = s.call("POST", "/api/tasks", json={"from": f"csv:{tmp_path}/m*.csv", "to": f"{server}/{db}?assert",
                                               "parser": PARSER})
        task = s.wait_for(r.json()["id"], lambda t: t["state"] in ("finished", "failed"), timeout=180)
        assert task["state"] == "finished", task
        assert task["totals"]["rows_written"] == 3_000
    finally:
        s.stop()
    assert scalar(server, "SELECT COUNT(*) FROM meters", db=db) == 3_000


def test_a_cluster_out_of_reach_is_one_line_and_nothing_is_made(scratch: Any, tmp_path: Path) -> None:
    server = SERVERS[0]
    db = scratch("tdetl_cl_none")
    meters(10, tables=1).write_csv(tmp_path / "m.csv")
    address = f"ray://127.0.0.1:{free_port()}"
    r = run_cli("run", "-f", f"csv:{tmp_path / 'm.csv'}", "-t", f"{server}/{db}?assert", "--parser",
                json.dumps(PARSER), "--cluster", address, timeout=300)
    assert r.returncode == 1 and f"--cluster {address}: cannot join the cluster" in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "taosdata" not in r.stderr
    assert scalar(server, f"SELECT COUNT(*) FROM information_schema.ins_databases WHERE name = '{db}'") == 0


def test_single_writer_targets_are_refused(tmp_path: Path) -> None:
    meters(10, tables=1).write_csv(tmp_path / "m.csv")
    for target, says in ((f"duckdb:{tmp_path / 'o.duckdb'}", "takes one writer"),
                         (f"local:{tmp_path / 'bk'}", "a local: backup is written by one process")):
        with pytest.raises(ClusterError, match=says):
            tdetl.run(f"csv:{tmp_path / 'm.csv'}", target, parser=json.dumps(PARSER), cluster="ray://nowhere:1")
        r = run_cli("run", "-f", f"csv:{tmp_path / 'm.csv'}", "-t", target, "--parser", json.dumps(PARSER),
                    "--cluster", "local")
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and says in r.stderr, r.stderr
    assert not (tmp_path / "o.duckdb").exists() and not (tmp_path / "bk").exists()
