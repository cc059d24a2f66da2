"""``--cluster``: a run's partitions as Ray tasks on a real local Ray cluster (a head with no CPUs
and two worker nodes, so every task runs on a worker node) against the bundled TDengine: a
200-table migration (by query and by TMQ), a ``local:`` backup and its restore, CSV files, Kafka
partitions through two consumers, workers killed with -9 mid-run, and the Ray client (``ray://``)
from the CLI. Rows are checked with SQL on the server. A node in its own mount namespace (a
filesystem the others do not share) shows the refusal of files a node cannot see."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tdetl
from tdetl.errors import ClusterError

from .conftest import Background, run_cli
from .samples import PARSER, meters
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


def _manifest_rows(root: Path) -> int:
    doc = json.loads((root / "manifest.json").read_text())
    return sum(f["rows"] for f in doc["files"])


def test_a_local_backup_and_its_restore(cluster: Any, scratch: Any, tmp_path: Path) -> None:
    """Each worker writes its own files and part journal; the driver writes the manifest."""
    server = SERVERS[0]
    src, back = scratch("tdetl_cl_bsrc"), scratch("tdetl_cl_back")
    _source(server, src, 100, tmp_path)
    s = tdetl.run(f"{server}/{src}", f"local:{tmp_path / 'bk'}?file_rows=3000", cluster=cluster.address)
    assert s.rows_written == TABLES * 100
    assert sorted(p.name for p in (tmp_path / "bk").iterdir()) == ["data", "manifest.json"]  # no journal left
    assert _manifest_rows(tmp_path / "bk") == TABLES * 100
    s = tdetl.run(f"local:{tmp_path / 'bk'}", f"{server}/{back}?assert", cluster=cluster.address)
    assert s.rows_written == TABLES * 100
    assert scalar(server, "SELECT COUNT(*) FROM meters", db=back) == TABLES * 100
    assert tdetl.verify(f"{server}/{src}", f"{server}/{back}")["differences"] == []


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


def test_an_mqtt_shared_subscription_through_two_consumers(cluster: Any, mosquitto: Any, scratch: Any) -> None:
    """Two clients of one $share group with persistent sessions: a first run subscribes them, what is
    published while they are down is queued for them, the second run (two shares) writes all of it."""
    from .test_mqtt import PARSER as MQTT_PARSER
    from .test_mqtt import _doc, _publish

    server = SERVERS[0]
    db = scratch("tdetl_cl_mqtt")
    group = f"cl{os.getpid()}"
    url = (f"mqtt://127.0.0.1:{mosquitto.port}?topics=$share/{group}/clm/%23::1&client_id={group}"
           "&clean_session=false&timeout=2s&batch_timeout=100ms")
    target = f"{server}/{db}?assert"
    assert tdetl.run(url, target, parser=json.dumps(MQTT_PARSER), jobs=2, cluster=cluster.address).rows_written == 0
    _publish(mosquitto, [("clm/a", json.dumps(_doc(i)).encode(), 1) for i in range(1000)])
    s = tdetl.run(url, target, parser=json.dumps(MQTT_PARSER), jobs=2, cluster=cluster.address)
    assert s.rows_written == 1000
    assert [r[0] for r in _rows(server, db, "SELECT id FROM meters ORDER BY id")] == list(range(1000))


def test_an_influxdb_measurement_in_time_spans(cluster: Any, influxd: Any, scratch: Any,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """One measurement over 17 one-minute windows: on a cluster its 8 spans of whole windows are
    partitions (and shares) of their own; every point arrives once."""
    from .test_influxdb import _db, _points, _url

    server = SERVERS[0]
    db = scratch("tdetl_cl_influx")
    src = _db(influxd)
    lines, want = _points(120)
    influxd.write(src, [ln for ln in lines if ln.startswith("plant")])
    caplog.set_level("INFO", logger="tdetl")
    s = tdetl.run(_url(influxd, src, endTime="2023-11-14T22:30:00Z", readWindow="M"), f"{server}/{db}?assert",
                  cluster=cluster.address)
    assert "8 parts in " in caplog.text
    assert s.rows_written == 120
    got = _rows(server, db, "SELECT ts, `count` FROM plant ORDER BY ts")
    assert [r[1] for r in got] == [r[4] for r in want]


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


def _kill_shares_once(run: Background, ready: Any) -> Any:
    """Kills (-9) every running share's worker once ``ready()``; the run's summary."""
    killed: list[int] = []
    end = time.monotonic() + 120
    while not killed and time.monotonic() < end and run.thread.is_alive():
        if ready():
            for pid in _running_shares():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.05)
    assert killed, "no share was running to kill"
    return run.join(300)


def test_a_worker_killed_mid_run_is_retried_and_rows_are_exact(cluster: Any, scratch: Any, tmp_path: Path) -> None:
    server = SERVERS[0]
    src, dst = scratch("tdetl_cl_kill"), scratch("tdetl_cl_killed")
    _source(server, src, 2000, tmp_path)
    run = Background(f"{server}/{src}", f"{server}/{dst}?assert", batch_rows=200, cluster=cluster.address)
    s = _kill_shares_once(run, lambda: _count(server, dst) > 0)  # once shares are writing
    assert s.outcomes.get("task retried after its worker died", 0) >= 1
    assert scalar(server, "SELECT COUNT(*) FROM meters", db=dst) == TABLES * 2000
    assert tdetl.verify(f"{server}/{src}", f"{server}/{dst}")["differences"] == []


def test_a_worker_killed_mid_backup_leaves_every_row_once(cluster: Any, scratch: Any, tmp_path: Path) -> None:
    """The retried share starts from its part journal's last checkpoint: the backup holds each row
    once (the manifest's row count), and restores to the source's rows."""
    server = SERVERS[0]
    src, back = scratch("tdetl_cl_kbsrc"), scratch("tdetl_cl_kback")
    _source(server, src, 1000, tmp_path)
    root = tmp_path / "bk"
    run = Background(f"{server}/{src}", f"local:{root}?file_rows=2000", batch_rows=200, cluster=cluster.address)

    def flushed() -> bool:  # a part journal names files
        parts = list((root / "parts").glob("*.jsonl")) if (root / "parts").is_dir() else []
        return any(p.read_text().count("\n") > 2 for p in parts)
    s = _kill_shares_once(run, flushed)
    assert s.outcomes.get("task retried after its worker died", 0) >= 1
    assert _manifest_rows(root) == TABLES * 1000
    tdetl.run(f"local:{root}", f"{server}/{back}?assert")
    assert tdetl.verify(f"{server}/{src}", f"{server}/{back}")["differences"] == []


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
    from .serve_helpers import Service

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
    for target in (f"duckdb:{tmp_path / 'o.duckdb'}", f"parquet:{tmp_path / 'o.parquet'}"):
        with pytest.raises(ClusterError, match="takes one writer"):
            tdetl.run(f"csv:{tmp_path / 'm.csv'}", target, parser=json.dumps(PARSER), cluster="ray://nowhere:1")
        r = run_cli("run", "-f", f"csv:{tmp_path / 'm.csv'}", "-t", target, "--parser", json.dumps(PARSER),
                    "--cluster", "local")
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and "takes one writer" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]


@pytest.fixture
def apart(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A cluster whose only worker node runs in its own mount namespace, with a fresh tmpfs over
    ``hidden``: that directory is not shared with this machine, as on another host."""
    from ray.cluster_utils import Cluster

    hidden = tmp_path / "hidden"
    hidden.mkdir()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 80 << 20,
                                                      "include_dashboard": False})
    ray_bin = Path(sys.executable).parent / "ray"  # the one installed with this Python's ray
    node = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f'mount -t tmpfs tmpfs "{hidden}" && exec "{ray_bin}" start --address={c.address} --num-cpus=1'
         f' --object-store-memory={80 << 20} --block'],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        import ray

        while True:
            if node.poll() is not None:
                err = (node.stderr.read() if node.stderr else "")[-300:]
                if "unshare" in err or "mount" in err:
                    missing(f"a private mount namespace (unshare --mount: {err.strip()})")
                raise AssertionError(f"the namespaced node did not start: {err}")
            ray.init(address=c.address, logging_level="WARNING", log_to_driver=False)
            cpus = ray.cluster_resources().get("CPU", 0)
            ray.shutdown()
            if cpus >= 1:
                break
            assert time.monotonic() < end, "the namespaced node did not join"
            time.sleep(1)
        yield c.address, hidden
    finally:
        os.killpg(node.pid, signal.SIGTERM)
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
        c.shutdown()


def test_files_a_node_does_not_share_are_refused(apart: tuple[str, Path], tmp_path: Path) -> None:
    address, hidden = apart
    meters(10, tables=1).write_csv(tmp_path / "m.csv")
    meters(10, tables=1).write_csv(hidden / "h.csv")
    with pytest.raises(ClusterError, match=f"does not share {hidden / 'bk'} with this machine"):
        tdetl.run(f"csv:{tmp_path / 'm.csv'}", f"local:{hidden / 'bk'}", parser=json.dumps(PARSER), cluster=address)
    assert sorted(p.name for p in hidden.iterdir()) == ["h.csv"]  # no backup begun, the probe removed
    with pytest.raises(ClusterError, match=f"does not see {hidden / 'h.csv'} as this machine does"):
        tdetl.run(f"csv:{hidden / 'h.csv'}", f"local:{tmp_path / 'bk'}", parser=json.dumps(PARSER), cluster=address)
    assert not (tmp_path / "bk").exists()
