"""``tdetl serve`` as a real process on loopback: tasks created, run, watched and stopped through the
REST API; bad definitions refused with 422; counters in /metrics; a bearer token; a service killed
with -9 mid-task and started again resumes the task with exact rows; a task whose target is down
is restarted with back-off and recovers once the server is up."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from .samples import PARSER, meters
from .serve_helpers import Service
from .services import Mosquitto
from .taos_helpers import SERVERS, Bundle, scalar, taospy_rows

httpx = pytest.importorskip("httpx")


def test_csv_to_duckdb_task_runs_to_the_end(service: Service, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    meters(3000, tables=3).write_csv(tmp_path / "m.csv")
    out = tmp_path / "o.duckdb"
    r = service.call("POST", "/api/tasks", json={"name": "meters", "from": f"csv:{tmp_path / 'm.csv'}",
                                                   "to": f"duckdb:{out}", "parser": PARSER})
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    task = service.wait_for(tid, lambda t: t["state"] in ("finished", "failed"))
    assert task["state"] == "finished", task
    assert task["counters"]["rows_written"] == 3000
    with duckdb.connect(str(out)) as con:
        assert con.sql("SELECT COUNT(*), COUNT(DISTINCT tbname) FROM meters").fetchall() == [(3000, 3)]
    made = list((service.data / "tasks" / tid).iterdir())  # explicit modes: nothing others may write
    assert {p.name for p in made} >= {"log.txt", "last_run.json", "totals.json", "last_success"}
    modes = {p.name: oct(os.stat(p).st_mode) for p in [*made, made[0].parent]}
    assert all(os.stat(p).st_mode & 0o022 == 0 for p in [*made, made[0].parent]), modes
    lines = service.call("GET", f"/api/tasks/{tid}/logs?tail=20").json()["lines"]
    assert any("wrote 3,000 rows" in ln for ln in lines), lines
    assert any(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} INFO tdetl: csv:", ln) for ln in lines), lines
    families = {f.name: f for f in text_string_to_metric_families(service.call("GET", "/metrics").text)}
    written = [s.value for s in families["tdetl_task_rows_written"].samples if s.labels.get("task") == tid
               and s.name.endswith("_total")]
    assert written == [3000.0]
    state = {s.labels["state"]: s.value for s in families["tdetl_task_state"].samples if s.labels["task"] == tid}
    assert state["finished"] == 1.0 and state["running"] == 0.0
    # Prometheus conventions: the unit before _total, no precomputed rate, build info, the process
    names = {smp.name for f in families.values() for smp in f.samples}
    assert {"tdetl_task_written_bytes_total", "tdetl_build_info", "process_resident_memory_bytes",
            "tdetl_task_last_success_timestamp_seconds"} <= names and "tdetl_task_rows_per_second" not in names
    service.call("POST", f"/api/tasks/{tid}/start")  # a second run: the counters go on, not from zero
    service.wait_for(tid, lambda t: t["state"] == "finished" and t["totals"]["rows_written"] == 6000)
    families = {f.name: f for f in text_string_to_metric_families(service.call("GET", "/metrics").text)}
    assert [s.value for s in families["tdetl_task_rows_written"].samples if s.labels.get("task") == tid] == [6000.0]
    assert service.call("GET", "/health").json()["status"] == "ok"
    api = service.call("GET", "/openapi.json").json()  # the API documented; /docs would need a CDN
    body = api["paths"]["/api/tasks"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"from", "to", "parser", "schedule"} <= set(body["properties"]) and body["required"] == ["from", "to"]
    assert "422" in api["paths"]["/api/tasks"]["post"]["responses"]
    assert service.call("GET", "/docs").status_code == 404
    drivers = {(d["driver"], d["role"]) for d in service.call("GET", "/api/drivers").json()}
    assert ("mqtt", "target") in drivers and ("parquet", "source") in drivers


def test_relative_data_dir_and_files_resolve_where_tasks_run(tmp_path: Path) -> None:
    """``tdetl serve --data-dir ./data`` (as the serve guide starts it): a task naming ``csv:m.csv`` and
    ``@p.json`` relative to the files directory is checked and run there, and the preview reads the
    same ``@p.json`` (the service's own directory is elsewhere)."""
    from .services import free_port, wait_port

    files = tmp_path / "data" / "files"
    files.mkdir(parents=True)
    meters(500, tables=2).write_csv(files / "m.csv")
    (files / "p.json").write_text(json.dumps(PARSER))
    port, log = free_port(), tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "tdetl", "serve", "--port", str(port), "--data-dir", "data"],
                            cwd=tmp_path, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, "tdetl serve", log, timeout=30)
        service = Service(tmp_path / "data", (tmp_path / "data" / "token").read_text().strip())
        service.port = port
        r = service.call("POST", "/api/tasks", json={"from": "csv:m.csv", "to": "duckdb:out.duckdb",
                                                       "parser": "@p.json"})
        assert r.status_code == 201, r.text
        task = service.wait_for(r.json()["id"], lambda t: t["state"] in ("finished", "failed"))
        assert task["state"] == "finished" and task["counters"]["rows_written"] == 500, task
        with duckdb.connect(str(files / "out.duckdb")) as con:
            assert con.sql("SELECT COUNT(*) FROM meters").fetchall() == [(500,)]
        header = (files / "m.csv").read_text().splitlines()[:2]
        r = service.call("POST", "/api/parser/preview", json={"parser": "@p.json", "samples": header, "kind": "csv"})
        assert r.status_code == 200 and r.json()["tables"], r.text
    finally:
        proc.terminate()
        proc.wait(20)


def test_bad_definitions_are_422_with_one_line(service: Service, tmp_path: Path) -> None:
    cases = [({"from": "nope://x", "to": "local:x"}, "unknown source driver 'nope'"),
             ({"from": "csv:x.csv?header=maybe", "to": "local:x"}, "header='maybe' is not valid"),
             ({"from": "csv:x.csv", "to": "local:x", "parser": "{not json"}, "not valid JSON"),
             ({"from": "csv:x.csv", "to": "local:x", "colour": "red"}, "unknown field 'colour'"),
             ({"from": "csv:x.csv", "to": "local:x", "on": {"ts-null": "later"}}, "'later' is not a choice"),
             ({"to": "local:x"}, "'from' must be a DSN"),
             ({"from": "csv:x.csv", "to": "local:x", "schedule": "@daily", "timezone": 8},
              "'timezone' must be an IANA"),
             ({"from": "csv:x.csv", "to": "local:x", "schedule": "@daily", "timezone": "Mars/Base"},
              "timezone 'Mars/Base' is not an IANA time zone")]
    for body, why in cases:
        r = service.call("POST", "/api/tasks", json=body)
        assert r.status_code == 422 and why in r.json()["detail"] and "\n" not in r.json()["detail"], (body, r.text)
    r = service.call("POST", "/api/tasks", json={"from": "taos://root:s3cret@127.0.0.1:9/db", "to": "local:y",
                                                   "start": False})
    assert r.status_code == 201 and "s3cret" not in r.text and "***" in r.json()["definition"]["from"]
    assert "s3cret" not in service.call("GET", "/api/tasks").text


def test_a_token_guards_every_call(tmp_path: Path) -> None:
    s = Service(tmp_path / "data", token="t0ken").start()
    try:
        assert httpx.get(f"http://127.0.0.1:{s.port}/api/tasks", timeout=10).status_code == 401
        assert s.call("GET", "/api/tasks").status_code == 200
    finally:
        s.stop()
    res = subprocess.run([sys.executable, "-m", "tdetl", "serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and "binding beyond loopback needs a token chosen by you" in res.stderr


@pytest.mark.taos
@pytest.mark.skipif(not SERVERS, reason="no TDengine server: set TDETL_TEST_TAOS")
def test_service_killed_mid_task_resumes_it_with_exact_rows(tmp_path: Path, scratch: Any) -> None:
    from .test_taos_errors import _load

    server = SERVERS[0]
    one, two = scratch("tdetl_sv"), scratch("tdetl_sv2")
    _load(server, one, tmp_path, tables=30, rows=30 * 50)
    s = Service(tmp_path / "data").start()
    try:
        r = s.call("POST", "/api/tasks", json={"from": f"{server}/{one}", "jobs": 1,
                                               "to": f"{server}/{two}?assert&interval=100ms&buffer-bytes=1"})
        tid = r.json()["id"]
        s.wait_for(tid, lambda t: t["counters"].get("rows_written", 0) >= 300)
        s.kill()  # the task's process goes with it (it dies with its parent)
        time.sleep(1)
        half = scalar(server, "SELECT COUNT(*) FROM meters", db=two)
        assert 300 <= half < 30 * 50
        s.start()
        task = s.wait_for(tid, lambda t: t["state"] in ("finished", "failed"), timeout=180)
        assert task["state"] == "finished", task
        assert task["counters"]["rows_written"] < 30 * 50  # resumed, not started over
        # the killed run's rows count in the task's totals (they were written), with the resumed run's
        assert task["totals"]["rows_written"] >= 30 * 50 > task["counters"]["rows_written"]
        import tdetl

        assert tdetl.verify(f"{server}/{one}", f"{server}/{two}")["differences"] == []
    finally:
        s.stop()


@pytest.mark.taos
@pytest.mark.skipif(not SERVERS, reason="no TDengine server: set TDETL_TEST_TAOS")
def test_a_task_whose_target_is_down_is_restarted_until_it_recovers(bundle: Bundle, tmp_path: Path) -> None:
    meters(200, tables=2).write_csv(tmp_path / "m.csv")
    s = Service(tmp_path / "data").start()
    try:
        target = f"taos://root:taosdata@127.0.0.1:{bundle.port}/recover?assert"
        r = s.call("POST", "/api/tasks", json={"from": f"csv:{tmp_path / 'm.csv'}", "to": target, "parser": PARSER,
                                               "max_restarts": 20})
        tid = r.json()["id"]
        task = s.wait_for(tid, lambda t: t["restarts"] >= 2)
        assert task["state"] in ("restarting", "running") and task["last_error"].startswith("tdetl: error:")
        env = bundle.start()
        task = s.wait_for(tid, lambda t: t["state"] in ("finished", "failed"), timeout=180)
        assert task["state"] == "finished", task
        assert scalar(env["TDETL_TEST_TAOS"], "SELECT COUNT(*) FROM recover.meters") == 200
    finally:
        s.stop()


def test_stop_start_and_delete_a_running_task(service: Service, mosquitto: Mosquitto, tmp_path: Path) -> None:
    """An MQTT subscription runs until stopped: stop ends its process, start runs it again, delete
    removes it; the task store is private to its owner."""
    src = f"mqtt://127.0.0.1:{mosquitto.port}?topics=serve/%23::1&client_id=sv{os.getpid()}"
    r = service.call("POST", "/api/tasks", json={"from": src, "to": f"local:{tmp_path / 'bk'}"})
    tid = r.json()["id"]
    service.wait_for(tid, lambda t: t["state"] == "running" and "elapsed" in t["counters"])
    assert service.call("POST", f"/api/tasks/{tid}/stop").json()["wanted"] == "stopped"
    service.wait_for(tid, lambda t: t["state"] == "stopped")
    assert service.call("PATCH", f"/api/tasks/{tid}", json={"name": "renamed"}).json()["name"] == "renamed"
    service.call("POST", f"/api/tasks/{tid}/start")
    service.wait_for(tid, lambda t: t["state"] == "running")
    assert service.call("PATCH", f"/api/tasks/{tid}", json={"name": "x"}).status_code == 409
    assert service.call("DELETE", f"/api/tasks/{tid}").status_code == 204
    assert service.call("GET", f"/api/tasks/{tid}").status_code == 404
    assert json.loads(service.call("GET", "/api/tasks").text) == []
    assert oct(os.stat(tmp_path / "data" / "tasks.sqlite").st_mode & 0o777) == "0o600"


def test_cron_schedules() -> None:
    from datetime import timedelta, timezone

    from tdetl.errors import ConfigError
    from tdetl.serve.cron import Cron

    t = datetime(2026, 12, 2, 19, 1, 30, tzinfo=timezone.utc)  # a Wednesday
    assert Cron("*/5 * * * *").next_after(t) == datetime(2026, 12, 2, 19, 5, tzinfo=timezone.utc)
    assert Cron("0 2 * * *").next_after(t) == datetime(2026, 12, 3, 2, 0, tzinfo=timezone.utc)
    assert Cron("0 0 * * 0").next_after(t) == datetime(2026, 12, 6, 0, 0, tzinfo=timezone.utc)  # Sunday
    assert Cron("30 4 1,15 * *").next_after(t) == datetime(2026, 12, 15, 4, 30, tzinfo=timezone.utc)
    for bad, why in (("* * *", "wrong number of fields"), ("61 * * * *", "bad minute"), ("x * * * *", "bad minute"),
                     ("0 0 31 2 *", "bad day-of-month")):
        with pytest.raises(ConfigError, match=why):
            Cron(bad)
    # names, 7 for Sunday, nicknames, and a task's own time zone (a nightly backup at 02:00 in Shanghai)
    assert Cron("0 0 * * 7").next_after(t) == Cron("0 0 * * SUN").next_after(t) == Cron("@weekly").next_after(t)
    assert Cron("@daily").next_after(t) == datetime(2026, 12, 3, 0, 0, tzinfo=timezone.utc)
    local = Cron("0 2 * * *", "Asia/Shanghai").next_after(t)
    assert local == datetime(2026, 12, 2, 18, 0, tzinfo=timezone.utc) + timedelta(days=1)  # 02:00 +08:00
    with pytest.raises(ConfigError, match="not an IANA time zone"):
        Cron("0 2 * * *", "Mars/Olympus")


def test_a_scheduled_task_waits_for_its_time_and_logs_stream(service: Service, tmp_path: Path) -> None:
    meters(30, tables=1).write_csv(tmp_path / "m.csv")
    body = {"from": f"csv:{tmp_path / 'm.csv'}", "to": f"duckdb:{tmp_path / 'o.duckdb'}", "parser": PARSER}
    r = service.call("POST", "/api/tasks", json={**body, "schedule": "0 3 * * *"})
    task = r.json()
    assert task["state"] == "created" and task["next_run"].endswith("Z")  # RFC 3339, UTC
    assert datetime.fromisoformat(task["next_run"].replace("Z", "+00:00")).timestamp() > time.time()
    time.sleep(1.5)
    assert service.call("GET", f"/api/tasks/{task['id']}").json()["state"] == "created"  # not before its time
    bad = service.call("POST", "/api/tasks", json={**body, "schedule": "0 25 * * *"})
    assert bad.status_code == 422 and "schedule '0 25 * * *': bad hour" in bad.json()["detail"]
    r = service.call("POST", "/api/tasks", json={**body, "start": False})
    tid = r.json()["id"]
    with httpx.stream("GET", f"http://127.0.0.1:{service.port}/api/tasks/{tid}/logs/stream", timeout=60) as stream:
        service.call("POST", f"/api/tasks/{tid}/start")
        for line in stream.iter_lines():
            if line.startswith("data: ") and "wrote 30 rows" in line:
                break
    # the summary line is written just before the worker exits; the state follows its exit
    assert service.wait_for(tid, lambda t: t["state"] != "running", timeout=30)["state"] == "finished"


@pytest.mark.taos
@pytest.mark.skipif(not SERVERS, reason="no TDengine server: set TDETL_TEST_TAOS")
def test_kafka_to_tdengine_task_stopped_and_started_rows_exact(service: Service, tansu: Any, scratch: Any) -> None:
    from .test_kafka import JSON_PARSER, _produce, _reading, _topic

    server = SERVERS[0]
    db = scratch("tdetl_svk")
    topic = _topic(tansu, 2)
    _produce(tansu, topic, [_reading(i) for i in range(500)])
    src = f"kafka://{tansu.bootstrap}?topics={topic}&group=sv{os.getpid()}&session_timeout=2s&timeout=never"
    r = service.call("POST", "/api/tasks", json={"from": src, "to": f"{server}/{db}?assert", "parser": JSON_PARSER})
    tid = r.json()["id"]

    def rows() -> int:
        try:
            return int(scalar(server, "SELECT COUNT(*) FROM readings", db=db) or 0)
        except Exception:
            return 0
    end = time.monotonic() + 90
    while rows() < 500 and time.monotonic() < end:
        time.sleep(0.3)
    assert rows() == 500
    service.call("POST", f"/api/tasks/{tid}/stop")
    service.wait_for(tid, lambda t: t["state"] == "stopped")
    _produce(tansu, topic, [_reading(i) for i in range(500, 800)])  # while stopped
    service.call("POST", f"/api/tasks/{tid}/start")
    _produce(tansu, topic, [_reading(i) for i in range(800, 1000)])  # while running again
    end = time.monotonic() + 120
    while rows() < 1000 and time.monotonic() < end:
        time.sleep(0.3)
    ids = sorted(r[0] for r in taospy_rows(db, "SELECT id FROM readings"))
    assert ids == list(range(1000))
    assert service.call("GET", f"/api/tasks/{tid}").json()["totals"]["rows_written"] >= 1000
    from prometheus_client.parser import text_string_to_metric_families

    def lag() -> list[float]:
        fams = {f.name: f for f in text_string_to_metric_families(service.call("GET", "/metrics").text)}
        return [s.value for s in fams["tdetl_task_lag_offsets"].samples if s.labels["task"] == tid]
    end = time.monotonic() + 10
    while lag() != [0.0] and time.monotonic() < end:  # the status file is rewritten every second
        time.sleep(0.3)
    assert lag() == [0.0]  # caught up with both partitions' high watermarks


@pytest.mark.taos
@pytest.mark.skipif(not SERVERS, reason="no TDengine server: set TDETL_TEST_TAOS")
def test_tmq_and_realtime_tasks_report_their_lag(service: Service, scratch: Any, tmp_path: Path) -> None:
    """/metrics: a TMQ task's WAL entries behind (0 once caught up), a realtime query's seconds
    behind the clock (never under its excursion)."""
    from prometheus_client.parser import text_string_to_metric_families

    from .taos_helpers import sql

    server = SERVERS[0]
    db = scratch("tdetl_svlag")
    # one vgroup: after a snapshot the server gives an assignment only once every vgroup has sent WAL rows
    sql(server, f"CREATE DATABASE `{db}` VGROUPS 1 WAL_RETENTION_PERIOD 3600",
        f"CREATE STABLE `{db}`.m (ts TIMESTAMP, v INT) TAGS (g INT)",
        *(f"INSERT INTO `{db}`.c{k % 3} USING `{db}`.m TAGS ({k % 3}) VALUES (NOW - {k}s, {k})" for k in range(30)))
    tmq = service.call("POST", "/api/tasks", json={
        "from": f"{server.replace('taos', 'tmq', 1)}/{db}?timeout=never&group.id=svlag",
        "to": f"duckdb:{tmp_path / 'tmq.duckdb'}"}).json()["id"]
    rt = service.call("POST", "/api/tasks", json={
        "from": f"{server}/{db}?mode=realtime&interval=200ms&excursion=2s&restro=1m",
        "to": f"duckdb:{tmp_path / 'rt.duckdb'}"}).json()["id"]

    def lags() -> dict[tuple[str, str], float]:
        fams = text_string_to_metric_families(service.call("GET", "/metrics").text)
        return {(f.name, s.labels["task"]): s.value for f in fams if f.name.startswith("tdetl_task_lag")
                for s in f.samples}
    service.wait_for(tmq, lambda t: t["counters"].get("rows_written", 0) >= 30)
    service.wait_for(rt, lambda t: t["counters"].get("rows_written", 0) >= 30)
    # the first copy is a snapshot, for which the server gives no assignment: rows through the WAL
    # now, until one is read from there (a row written while the snapshot is read may come with it)
    end, k = time.monotonic() + 60, 0
    while ("tdetl_task_lag_offsets", tmq) not in lags() and time.monotonic() < end:
        sql(server, f"INSERT INTO `{db}`.c{k % 3} VALUES (NOW, {k})")
        k += 1
        time.sleep(1.0)
    service.wait_for(tmq, lambda t: t["counters"].get("rows_written", 0) >= 30 + k)
    end = time.monotonic() + 30
    while lags().get(("tdetl_task_lag_offsets", tmq)) != 0.0 and time.monotonic() < end:
        time.sleep(0.3)
    got = lags()
    assert got.get(("tdetl_task_lag_offsets", tmq)) == 0.0, got  # caught up with every vgroup's WAL
    assert 2.0 <= got.get(("tdetl_task_lag_seconds", rt), -1) < 30, got  # the excursion, and at most a poll more
    assert ("tdetl_task_lag_seconds", tmq) not in got and ("tdetl_task_lag_offsets", rt) not in got
    for tid in (tmq, rt):
        service.call("DELETE", f"/api/tasks/{tid}")
