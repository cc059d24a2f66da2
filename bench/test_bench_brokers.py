"""End to end from the local brokers: Kafka -> ``local:`` backup and MQTT -> ``local:`` backup, in
messages/s, each against a bare client of the same library draining the same messages in the same
run (no parsing, no writing): the ratio is what tdetl's parse + write + acknowledge costs on top.

Both tdetl runs end after an idle ``timeout`` (IDLE seconds without messages); messages/s is
computed over the run minus that wait.

    pytest bench/test_bench_brokers.py --benchmark-only --benchmark-columns=min,median
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import tdetl
from tests.services import Mosquitto, Tansu, mosquitto, tansu  # noqa: F401 - broker fixtures

from .test_bench_messages import PARSER

KAFKA_N = 100_000
MQTT_N = 50_000
IDLE = 0.5


def _payload(i: int) -> bytes:
    return json.dumps({"ts": 1_700_000_000_000 + i, "id": i % 100, "voltage": 200 + i % 30,
                       "current": round(10 + (i % 7) / 3, 3), "phase": 0.25,
                       "data": {"loc": f"California.{i % 10}"}}).encode()


def _rate(benchmark: Any, n: int, idle: float = 0.0) -> None:
    benchmark.extra_info["messages_per_s"] = round(n / (benchmark.stats.stats.min - idle))


# ---- Kafka ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def topic(tansu: Tansu) -> str:  # noqa: F811
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    name = f"bench{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=tansu.bootstrap)
    admin.create_topics([NewTopic(name, 2, 1)])
    admin.close()
    p = KafkaProducer(bootstrap_servers=tansu.bootstrap, linger_ms=20, batch_size=1 << 20)
    for i in range(KAFKA_N):
        p.send(name, _payload(i))
    p.flush()
    p.close()
    return name


def test_kafka_to_local(benchmark: Any, tansu: Tansu, topic: str) -> None:  # noqa: F811
    out = Path(tempfile.mkdtemp(prefix="tdetl-bench-"))

    def run() -> Any:
        shutil.rmtree(out, ignore_errors=True)
        url = (f"kafka://{tansu.bootstrap}?topics={topic}&group=b{uuid.uuid4().hex[:8]}&session_timeout=2s"
               f"&timeout={int(IDLE * 1000)}")
        return tdetl.run(url, f"local:{out}", parser=json.dumps(PARSER))

    s = benchmark.pedantic(run, rounds=3, warmup_rounds=0)
    assert s.rows_written == KAFKA_N and s.rows_failed == 0
    shutil.rmtree(out, ignore_errors=True)
    _rate(benchmark, KAFKA_N, IDLE)


def test_kafka_baseline_bare_consumer(benchmark: Any, tansu: Tansu, topic: str) -> None:  # noqa: F811
    from kafka import KafkaConsumer

    def drain() -> int:
        c = KafkaConsumer(topic, bootstrap_servers=tansu.bootstrap, group_id=f"b{uuid.uuid4().hex[:8]}",
                          auto_offset_reset="earliest", enable_auto_commit=False, session_timeout_ms=2000,
                          heartbeat_interval_ms=500, max_poll_records=10_000)
        n = 0
        while n < KAFKA_N:
            n += sum(len(v) for v in c.poll(timeout_ms=500).values())
        c.commit()
        c.close()
        return n

    assert benchmark.pedantic(drain, rounds=3, warmup_rounds=0) == KAFKA_N
    _rate(benchmark, KAFKA_N)


# ---- MQTT ----------------------------------------------------------------------------------------

def _queue_for(m: Mosquitto, client_id: str) -> None:
    """Register a persistent QoS 1 session, then publish MQTT_N messages for it while it is away."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 600
    sub.connect("127.0.0.1", m.port, clean_start=False, properties=props)
    sub.loop_start()
    sub.subscribe("bench/#", qos=1)
    time.sleep(0.3)
    sub.disconnect()
    sub.loop_stop()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"p{client_id}")
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", m.port)
    pub.loop_start()
    info = None
    for i in range(MQTT_N):
        info = pub.publish("bench/meters", _payload(i), qos=1)
    assert info is not None
    info.wait_for_publish(120)
    pub.disconnect()
    pub.loop_stop()


def test_mqtt_to_local(benchmark: Any, mosquitto: Mosquitto) -> None:  # noqa: F811
    out = Path(tempfile.mkdtemp(prefix="tdetl-bench-"))

    def setup() -> tuple[tuple[str], dict[str, Any]]:
        cid = f"b{uuid.uuid4().hex[:8]}"
        _queue_for(mosquitto, cid)
        shutil.rmtree(out, ignore_errors=True)
        return (cid,), {}

    def run(cid: str) -> Any:
        url = (f"mqtt://127.0.0.1:{mosquitto.port}?topics=bench/%23::1&client_id={cid}&version=5.0"
               f"&clean_session=false&timeout={int(IDLE * 1000)}ms")
        return tdetl.run(url, f"local:{out}", parser=json.dumps(PARSER))

    s = benchmark.pedantic(run, setup=setup, rounds=3, warmup_rounds=0)
    assert s.rows_written == MQTT_N and s.rows_failed == 0
    shutil.rmtree(out, ignore_errors=True)
    _rate(benchmark, MQTT_N, IDLE)


def test_mqtt_baseline_bare_subscriber(benchmark: Any, mosquitto: Mosquitto) -> None:  # noqa: F811
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    def setup() -> tuple[tuple[str], dict[str, Any]]:
        cid = f"b{uuid.uuid4().hex[:8]}"
        _queue_for(mosquitto, cid)
        return (cid,), {}

    def drain(cid: str) -> int:
        done, count = threading.Event(), [0]

        def on_message(c: Any, userdata: Any, msg: Any) -> None:
            count[0] += 1
            if count[0] == MQTT_N:
                done.set()

        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=5)
        c.on_message = on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        props.ReceiveMaximum = 65535
        c.connect("127.0.0.1", mosquitto.port, clean_start=False, properties=props)
        c.loop_start()
        assert done.wait(300)
        c.disconnect()
        c.loop_stop()
        return count[0]

    assert benchmark.pedantic(drain, setup=setup, rounds=3, warmup_rounds=0) == MQTT_N
    _rate(benchmark, MQTT_N)
