"""The mqtt source against a real mosquitto on loopback: QoS 0/1/2, wildcards, TLS with a
self-signed CA, the payload.json parser form with JSON paths and arrays, and a persistent session
that keeps what was published while we were down."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest

import tdetl
from tdetl.drivers.mqtt.source import parse_topics
from tdetl.errors import DsnError

from .services import Mosquitto

PARSER = {"parse": {"payload": {"json": [
    {"name": "ts", "alias": "ts", "cast": "TIMESTAMP(ms)"},
    {"name": "id", "alias": "id", "cast": "INT"},
    {"name": "$.data.v", "alias": "v", "cast": "DOUBLE"},
    {"name": "$[\"loc\"][0][\"city\"]", "alias": "city", "cast": "VARCHAR(16)"},
]}}, "model": {"name": "m_{city}", "using": "meters", "tags": ["city"], "columns": ["ts", "id", "v"]}}


def _doc(i: int, city: str = "sf") -> dict[str, Any]:
    return {"ts": 1_700_000_000_000 + i, "id": i, "data": {"v": i / 2}, "loc": [{"city": city}]}


def _publish(m: Mosquitto, items: list[tuple[str, bytes, int]], tls: bool = False) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    if tls:
        c.tls_set(ca_certs=str(m.ca))
    c.connect("127.0.0.1", m.tls_port if tls else m.port)
    c.loop_start()
    for topic, payload, qos in items:
        c.publish(topic, payload, qos=qos).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


def _run_while_publishing(url: str, out: Path, items: list[tuple[str, bytes, int]], m: Mosquitto,
                          tls: bool = False, **kw: Any) -> Any:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["summary"] = tdetl.run(url, f"duckdb:{out}", **kw)
        except BaseException as e:  # handed to the test thread
            result["error"] = e

    t = threading.Thread(target=run)
    t.start()
    time.sleep(1.0)  # connected and subscribed
    _publish(m, items, tls)
    t.join(60)
    if "error" in result:
        raise result["error"]
    return result["summary"]


def _ids(out: Path) -> list[int]:
    with duckdb.connect(str(out)) as con:
        return [r[0] for r in con.execute("SELECT id FROM meters ORDER BY id").fetchall()]


def test_topics_param() -> None:
    assert parse_topics("a/+/c::1,d/#,e::2", "w") == [("a/+/c", 1), ("d/#", 0), ("e", 2)]
    for bad in ("a::3", "a/#/b"):
        with pytest.raises(DsnError):
            parse_topics(bad, "w")
    with pytest.raises(DsnError, match="client_id is required"):
        tdetl.run("mqtt://127.0.0.1:1883?topics=a", "duckdb:/tmp/never.duckdb")


def test_qos_levels_wildcards_paths_and_arrays(mosquitto: Mosquitto, tmp_path: Path) -> None:
    items = [(f"plant/l{i % 3}/meter", json.dumps(_doc(i)).encode(), i % 3) for i in range(30)]
    items.append(("plant/l1/other/deep", json.dumps(_doc(100)).encode(), 1))  # '+' matches one level only
    items.append(("other/x", json.dumps(_doc(101)).encode(), 1))
    items.append(("batch/all", json.dumps([_doc(200, "la"), _doc(201, "la")]).encode(), 2))  # array: 2 rows
    url = (f"mqtt://127.0.0.1:{mosquitto.port}?topics=plant/+/meter::2,batch/%23::1"
           f"&client_id=c{uuid.uuid4().hex[:6]}&timeout=1500ms&batch_timeout=200ms")
    out = tmp_path / "m.duckdb"
    s = _run_while_publishing(url, out, items, mosquitto, parser=json.dumps(PARSER))
    assert s.rows_written == 32
    assert _ids(out) == [*range(30), 200, 201]
    with duckdb.connect(str(out)) as con:
        got = con.execute("SELECT tbname, city, v FROM meters WHERE id IN (4, 200)").fetchall()
    assert sorted(got) == [("m_la", "la", 100.0), ("m_sf", "sf", 2.0)]


def test_tls_with_a_self_signed_ca(mosquitto: Mosquitto, tmp_path: Path) -> None:
    items = [("secure/x", json.dumps(_doc(i)).encode(), 1) for i in range(5)]
    url = (f"mqtt://127.0.0.1:{mosquitto.tls_port}?topics=secure/%23::1&client_id=t{uuid.uuid4().hex[:6]}"
           f"&ca=@{mosquitto.ca}&timeout=1s&batch_timeout=100ms")
    out = tmp_path / "t.duckdb"
    _run_while_publishing(url, out, items, mosquitto, tls=True, parser=json.dumps(PARSER))
    assert _ids(out) == list(range(5))


def test_persistent_session_keeps_messages_published_while_down(mosquitto: Mosquitto, tmp_path: Path) -> None:
    client = f"p{uuid.uuid4().hex[:6]}"
    url = (f"mqtt://127.0.0.1:{mosquitto.port}?topics=keep/%23::1&client_id={client}&clean_session=false"
           "&timeout=1s&batch_timeout=100ms")
    first = tmp_path / "1.duckdb"
    _run_while_publishing(url, first, [("keep/a", json.dumps(_doc(i)).encode(), 1) for i in range(5)], mosquitto,
                          parser=json.dumps(PARSER))
    assert _ids(first) == list(range(5))
    _publish(mosquitto, [("keep/a", json.dumps(_doc(i)).encode(), 1) for i in range(5, 12)])  # we are down
    second = tmp_path / "2.duckdb"
    tdetl.run(url, f"duckdb:{second}", parser=json.dumps(PARSER))
    assert _ids(second) == list(range(5, 12))


def test_a_shared_subscription_through_two_clients(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """--jobs 2 on $share/…: two clients (<client_id>-0 and -1), the broker divides the messages
    between them, each row arrives once. With persistent sessions the division shows: what was
    published while both were down waits half for each, and client -0 alone takes only its half."""
    group = f"g{uuid.uuid4().hex[:6]}"
    url = (f"mqtt://127.0.0.1:{mosquitto.port}?topics=$share/{group}/sh/%23::1&client_id={group}"
           "&clean_session=false&timeout=1s&batch_timeout=100ms")
    live = tmp_path / "live.duckdb"
    s = _run_while_publishing(url, live, [("sh/a", json.dumps(_doc(i)).encode(), 1) for i in range(400)], mosquitto,
                              parser=json.dumps(PARSER), jobs=2)
    assert _ids(live) == list(range(400)) and s.rows_written == 400
    _publish(mosquitto, [("sh/a", json.dumps(_doc(i)).encode(), 1) for i in range(400, 800)])  # both down
    first = tmp_path / "first.duckdb"
    tdetl.run(url.replace(f"client_id={group}", f"client_id={group}-0"), f"duckdb:{first}", parser=json.dumps(PARSER))
    rest = tmp_path / "rest.duckdb"
    tdetl.run(url, f"duckdb:{rest}", parser=json.dumps(PARSER), jobs=2)
    half, other = _ids(first), _ids(rest)
    assert 0 < len(half) < 400 and sorted(half + other) == list(range(400, 800))


def test_bad_payload_is_reported_by_topic(mosquitto: Mosquitto, tmp_path: Path) -> None:
    items = [("bad/x", json.dumps(_doc(1)).encode(), 1), ("bad/x", b"", 1), ("bad/x", b"nope", 1)]
    url = (f"mqtt://127.0.0.1:{mosquitto.port}?topics=bad/%23::1&client_id=b{uuid.uuid4().hex[:6]}"
           "&timeout=1s&batch_timeout=300ms")
    archive = tmp_path / "bad.jsonl"
    s = _run_while_publishing(url, tmp_path / "b.duckdb", items, mosquitto, parser=json.dumps(PARSER),
                              on_error=f"archive:{archive}")
    assert s.rows_written == 1 and s.rows_failed == 2
    reasons = [json.loads(line)["reason"] for line in archive.read_text().splitlines()]
    assert all("message bad/x/" in r and "not JSON" in r for r in reasons)


def test_keys_and_types_that_first_appear_late_in_a_batch_are_kept() -> None:
    from tdetl.quality import Rejects
    from tdetl.transform.messages import MessageParser, Messages
    from tdetl.transform.parser import load_parser

    cfg = {"parse": {"payload": {"json": [{"name": "ts", "cast": "TIMESTAMP(ms)"}, {"name": "x", "cast": "DOUBLE"},
                                          {"name": "late", "cast": "INT"}]}},
           "model": {"name": "t", "columns": ["ts", "x", "late"]}}
    docs = [{"ts": i, "x": 1} for i in range(500)] + [{"ts": 500, "x": 2.5, "late": 7}]
    n = len(docs)
    msgs = Messages([json.dumps(d).encode() for d in docs], ["t"] * n, [0] * n, list(range(n)), [None] * n, [0] * n)
    out = MessageParser(load_parser(json.dumps(cfg)), None, "w").parse(msgs, Rejects(), "p", 1)
    rows = [r for b in out for r in b.data.to_pylist()]
    assert len(rows) == n and rows[-1]["x"] == 2.5 and rows[-1]["late"] == 7 and rows[0]["late"] is None


def test_mqtt5_persistent_session_and_transform_rules(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """version=5.0 with clean_session=false keeps the session (expiry interval) across our restart;
    a filter and mapping rules run on the messages."""
    parser = json.loads(json.dumps(PARSER))
    parser["transform"] = [{"filter": "id % 2 == 0 && starts_with(city, 's')"}]
    parser["model"]["columns"] = ["ts", "id", "v", "v10"]
    parser["model"]["mapping"] = {"v10": {"expr": "round(v * 10)", "as": "int"}}
    client = f"v5{uuid.uuid4().hex[:6]}"
    url = (f"mqtt://127.0.0.1:{mosquitto.port}?topics=five/%23::2&client_id={client}&version=5.0"
           "&clean_session=false&timeout=1s&batch_timeout=100ms")
    first = tmp_path / "1.duckdb"
    s = _run_while_publishing(url, first, [("five/a", json.dumps(_doc(i)).encode(), 2) for i in range(6)],
                              mosquitto, parser=json.dumps(parser))
    assert _ids(first) == [0, 2, 4] and s.rows_filtered == 3
    _publish(mosquitto, [("five/a", json.dumps(_doc(i, "sf" if i < 10 else "la")).encode(), 1)
                         for i in range(6, 12)])  # we are down
    second = tmp_path / "2.duckdb"
    tdetl.run(url, f"duckdb:{second}", parser=json.dumps(parser))
    with duckdb.connect(str(second)) as con:
        assert con.execute("SELECT id, v10 FROM meters ORDER BY id").fetchall() == [(6, 30), (8, 40)]


def test_broker_restart_under_a_running_consumer(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """The source reconnects with back-off and subscribes again; what is published after that lands."""
    url = (f"mqtt://127.0.0.1:{mosquitto.port}?topics=rs/%23::1&client_id=r{uuid.uuid4().hex[:6]}"
           "&timeout=6s&batch_timeout=100ms")
    out = tmp_path / "r.duckdb"
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["summary"] = tdetl.run(url, f"duckdb:{out}", parser=json.dumps(PARSER))
        except BaseException as e:
            result["error"] = e

    t = threading.Thread(target=run)
    t.start()
    time.sleep(1.0)
    _publish(mosquitto, [("rs/a", json.dumps(_doc(i)).encode(), 1) for i in range(5)])
    time.sleep(0.5)
    mosquitto.restart()
    time.sleep(3.0)  # back-off is 1 s at first: reconnected and subscribed again by now
    _publish(mosquitto, [("rs/a", json.dumps(_doc(i)).encode(), 1) for i in range(5, 10)])
    t.join(60)
    assert not t.is_alive()
    if "error" in result:
        raise result["error"]
    assert _ids(out) == list(range(10))


def test_qos1_beyond_the_brokers_in_flight_window(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """MQTT 3.1.1: mosquitto sends at most 20 unacknowledged QoS 1 messages (max_inflight_messages)
    and we acknowledge only after the sink flushed; a lull must trigger that flush, or the run
    would stall at 20 messages."""
    client = f"w{uuid.uuid4().hex[:6]}"
    url = (f"mqtt://127.0.0.1:{mosquitto.port}?topics=win/%23::1&client_id={client}&version=3.1.1"
           "&clean_session=false&timeout=1s")
    tdetl.run(url, f"duckdb:{tmp_path / '0.duckdb'}", parser=json.dumps(PARSER))  # the session exists now
    _publish(mosquitto, [("win/a", json.dumps(_doc(i)).encode(), 1) for i in range(500)])  # queued for us
    out = tmp_path / "1.duckdb"
    s = tdetl.run(url, f"duckdb:{out}", parser=json.dumps(PARSER))
    assert s.rows_written == 500 and _ids(out) == list(range(500))
