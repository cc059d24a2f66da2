"""``mqtt://`` and ``kafka://`` as targets (publishing onward) against mosquitto and tansu: every row
published as expected, topics fanned out by tags, the three formats, keys, and a broker restart in
the middle of a run with nothing lost."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

import tdetl
from tdetl.errors import ConfigError

from .samples import PARSER, meters
from .services import Mosquitto, Tansu, _start_mosquitto, free_port, stop
from .taos_helpers import SERVERS, sql, taospy_rows
from .test_kafka import _topic
from .test_tmq import BASE, TABLES, make_source, tmq


def _csv(tmp: Path, rows: int = 600, tables: int = 3) -> tuple[str, pl.DataFrame]:
    df = meters(rows, tables=tables)
    df.write_csv(tmp / "m.csv")
    return f"csv:{tmp / 'm.csv'}", df


def _expected(df: pl.DataFrame) -> list[dict[str, Any]]:
    """The rows as the json format publishes them: tbname, tags, columns; ts in RFC 3339 (ms); a FLOAT
    in its shortest form."""
    out = df.with_columns(pl.from_epoch("ts", "ms").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
                          *(pl.col(c).cast(pl.String).cast(pl.Float64) for c in ("current", "phase")))
    cols = ["tbname", "groupid", "location", "ts", "current", "voltage", "phase"]
    return sorted(out.select(cols).to_dicts(), key=lambda r: (r["tbname"], r["ts"]))


class Subscriber:
    """A paho client collecting what arrives under ``topic`` (QoS 1), reconnecting on its own."""

    def __init__(self, port: int, topic: str, client_id: str | None = None, clean: bool = True) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.got: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"sub-{uuid.uuid4().hex[:6]}",
                             clean_session=clean)
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
        self.c.on_message = self._on
        self.c.reconnect_delay_set(1, 2)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        time.sleep(0.5)

    def _on(self, c: Any, u: Any, msg: Any) -> None:
        with self.lock:
            self.got.append((msg.topic, msg.payload))

    def wait(self, n: int, timeout: float = 60) -> list[tuple[str, bytes]]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if len(self.got) >= n:
                    break
            time.sleep(0.05)
        time.sleep(0.3)  # nothing more should come
        with self.lock:
            return list(self.got)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_mqtt_every_row_with_topics_fanned_out_by_tag(mosquitto: Mosquitto, tmp_path: Path) -> None:
    src, df = _csv(tmp_path)
    root = f"p{uuid.uuid4().hex[:6]}"
    sub = Subscriber(mosquitto.port, f"{root}/#")
    s = tdetl.run(src, f"mqtt://127.0.0.1:{mosquitto.port}?topic={root}/{{location}}/{{stable}}/{{tbname}}&qos=1",
                  parser=json.dumps(PARSER))
    got = sub.wait(600)
    sub.close()
    assert s.rows_written == 600 and len(got) == 600
    for topic, payload in got:
        row = json.loads(payload)
        assert topic == f"{root}/{row['location']}/meters/{row['tbname']}"
    rows = sorted((json.loads(p) for _, p in got), key=lambda r: (r["tbname"], r["ts"]))
    assert rows == _expected(df)


def test_kafka_json_batch_and_arrow_with_keys(tansu: Tansu, tmp_path: Path) -> None:
    from kafka import KafkaConsumer, TopicPartition

    src, df = _csv(tmp_path)
    topic = _topic(tansu, 1)
    s = tdetl.run(src, f"kafka://{tansu.bootstrap}?topic={topic}&key={{tbname}}&format=json-batch&ts_format=epoch",
                  parser=json.dumps(PARSER), batch_rows=100)
    assert s.rows_written == 600
    arrow_topic = _topic(tansu, 1)
    tdetl.run(src, f"kafka://{tansu.bootstrap}?topic={arrow_topic}&format=arrow", parser=json.dumps(PARSER))

    def consume(name: str) -> list[Any]:
        c = KafkaConsumer(bootstrap_servers=tansu.bootstrap, consumer_timeout_ms=3000)
        c.assign([TopicPartition(name, 0)])
        c.seek_to_beginning()
        out = list(c)
        c.close()
        return out

    batches = consume(topic)
    rows = []
    for m in batches:
        items = json.loads(m.value)
        assert {r["tbname"] for r in items} == {m.key.decode()}  # one key (table) per message
        rows += items
    want = [{**r, "ts": int(pl.Series([r["ts"]]).str.to_datetime("%Y-%m-%dT%H:%M:%S%.3fZ").dt.epoch("ms")[0])}
            for r in _expected(df)]
    assert sorted(rows, key=lambda r: (r["tbname"], r["ts"])) == want
    assert len(batches) >= 6  # batches of 100 rows, per table
    tables = [pa.ipc.open_stream(m.value).read_all() for m in consume(arrow_topic)]
    got = pa.concat_tables(tables)
    assert got.num_rows == 600 and got.schema.field("ts").type == pa.timestamp("ms")
    assert sorted(got.column("voltage").to_pylist()) == sorted(df["voltage"].to_list())


def test_bad_publish_targets_are_one_line(mosquitto: Mosquitto, tmp_path: Path) -> None:
    src, _ = _csv(tmp_path, 10, 1)
    with pytest.raises(ConfigError, match="name where to publish: topic=<template>"):
        tdetl.run(src, f"mqtt://127.0.0.1:{mosquitto.port}", parser=json.dumps(PARSER))
    with pytest.raises(ConfigError, match=r"template 'x/\{nope\}' names 'nope', which table 'd0' does not have"):
        tdetl.run(src, f"mqtt://127.0.0.1:{mosquitto.port}?topic=x/{{nope}}", parser=json.dumps(PARSER))
    with pytest.raises(tdetl.TdetlError, match="cannot connect to the broker"):
        tdetl.run(src, f"mqtt://127.0.0.1:{free_port()}?topic=x", parser=json.dumps(PARSER))


def test_mqtt_broker_restart_mid_run_loses_nothing(tmp_path: Path) -> None:
    """A persistent broker, a persistent subscriber: the broker stops while tdetl publishes; paho
    keeps what was not acknowledged and sends it again once the broker is back."""
    if not shutil.which("mosquitto"):
        pytest.skip("mosquitto is not installed")
    d = Path(tempfile.mkdtemp(prefix="tdetl-mosq-persist-"))
    d.chmod(0o777)
    port = free_port()
    (d / "mosquitto.conf").write_text(
        f"allow_anonymous true\npersistence true\npersistence_location {d}/\nmax_queued_messages 0\n"
        f"log_dest stderr\nlog_type error\nlistener {port} 127.0.0.1\n")
    proc = _start_mosquitto(d, port, port)
    sub = Subscriber(port, "rs/#", client_id=f"keep-{uuid.uuid4().hex[:6]}", clean=False)
    src, _ = _csv(tmp_path, 20_000, 4)
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["s"] = tdetl.run(src, f"mqtt://127.0.0.1:{port}?topic=rs/{{tbname}}&qos=1&format=json",
                                    parser=json.dumps(PARSER), batch_rows=250)
        except BaseException as e:
            result["e"] = e

    t = threading.Thread(target=run)
    try:
        t.start()
        sub.wait(2000, timeout=60)
        stop(proc)
        assert t.is_alive(), "the run ended before the broker stopped: nothing was tested"
        time.sleep(2)
        proc = _start_mosquitto(d, port, port)
        t.join(180)
        assert "e" not in result, result.get("e")
        got = sub.wait(20_000, timeout=120)
        keys = {(json.loads(p)["tbname"], json.loads(p)["ts"]) for _, p in got}
        assert len(keys) == 20_000  # every row arrived (QoS 1: some may have come twice)
    finally:
        sub.close()
        stop(proc)
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.taos
@pytest.mark.skipif(not SERVERS, reason="no TDengine server: set TDETL_TEST_TAOS")
def test_tmq_subscription_published_and_committed_only_once(mosquitto: Mosquitto, scratch: Any) -> None:
    """A TMQ subscription published to MQTT: every row once; a second run of the same group
    publishes only what came since (offsets were committed after the broker's acknowledgements)."""
    server = SERVERS[0]
    db = scratch("tdetl_pub")
    make_source(server, db)
    root = f"tq{uuid.uuid4().hex[:6]}"
    sub = Subscriber(mosquitto.port, f"{root}/#")
    src = f"{tmq(server)}/{db}.meters?timeout=2s&group.id=pub{uuid.uuid4().hex[:6]}"
    target = f"mqtt://127.0.0.1:{mosquitto.port}?topic={root}/{{location}}/{{tbname}}&ts_format=epoch"
    s = tdetl.run(src, target)
    first = sub.wait(TABLES * 100)
    assert s.rows_written == TABLES * 100 and len(first) == TABLES * 100
    want = {(r[0], r[1], r[2], r[3]) for r in taospy_rows(db, "SELECT tbname, location, CAST(ts AS BIGINT), voltage"
                                                                 " FROM meters")}
    got = {(json.loads(p)["tbname"], json.loads(p)["location"], json.loads(p)["ts"], json.loads(p)["voltage"])
           for _, p in first}
    assert got == want
    assert all(t == f"{root}/{json.loads(p)['location']}/{json.loads(p)['tbname']}" for t, p in first)
    sql(server, f"INSERT INTO `{db}`.d1 VALUES ({BASE + 500_000}, 9.5, 77)")
    s2 = tdetl.run(src, target)
    again = sub.wait(TABLES * 100 + 1)
    sub.close()
    assert s2.rows_written == 1 and len(again) == TABLES * 100 + 1
    assert json.loads(again[-1][1])["voltage"] == 77


def test_mqtt_one_batch_larger_than_the_message_ids(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """70,000 rows of one table arrive as one batch: more messages than 16-bit MQTT message ids, so
    the sink waits for acknowledgements on the way instead of reusing an id still in flight."""
    src, _ = _csv(tmp_path, 70_000, 1)
    root = f"big{uuid.uuid4().hex[:6]}"
    sub = Subscriber(mosquitto.port, f"{root}/#")
    s = tdetl.run(src, f"mqtt://127.0.0.1:{mosquitto.port}?topic={root}/{{tbname}}", parser=json.dumps(PARSER))
    got = sub.wait(70_000, timeout=120)
    sub.close()
    assert s.rows_written == 70_000
    assert len({json.loads(p)["ts"] for _, p in got}) == 70_000
