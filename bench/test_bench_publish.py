"""Publishing (``mqtt://`` and ``kafka://`` targets) against a bare client of the same library
sending the same JSON payloads in the same run: the ratio is what tdetl's reading, rendering
(topic per row, JSON per row) and waiting for every acknowledgement cost on top. 100,000 meters rows
from a ``local:`` backup, JSON per row; MQTT at QoS 1, Kafka with acks=all.

    pytest bench/test_bench_publish.py --benchmark-only --benchmark-columns=min,median
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

import tdetl
from tests.samples import PARSER, meters
from tests.services import Mosquitto, Tansu, mosquitto, tansu  # noqa: F401 - broker fixtures

N = 100_000


@pytest.fixture(scope="module")
def backup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, bytes]]]:
    d = tmp_path_factory.mktemp("publish")
    meters(N, tables=100).write_csv(d / "m.csv")
    tdetl.run(f"csv:{d / 'm.csv'}", f"local:{d / 'bk'}", parser=json.dumps(PARSER))
    rows = meters(N, tables=100).to_dicts()
    return d / "bk", [(f"bench/{r['tbname']}", json.dumps(r).encode()) for r in rows]


def _rate(benchmark: Any) -> None:
    benchmark.extra_info["rows_per_s"] = round(N / benchmark.stats.stats.min)


def test_baseline_paho_qos1(benchmark, mosquitto: Mosquitto, backup: Any) -> None:  # noqa: F811
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    _, messages = backup

    def send() -> None:
        ready = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bare-{uuid.uuid4().hex[:6]}")
        c.max_inflight_messages_set(1000)
        c.on_connect = lambda *a: ready.set()
        c.connect("127.0.0.1", mosquitto.port)
        c.loop_start()
        ready.wait(10)
        for start in range(0, len(messages), 30_000):  # message ids are 16 bits: wait before reusing them
            infos = [c.publish(t, p, qos=1) for t, p in messages[start:start + 30_000]]
            for i in infos:
                i.wait_for_publish(60)
        c.disconnect()
        c.loop_stop()
    benchmark.pedantic(send, rounds=3, warmup_rounds=1)
    _rate(benchmark)


def test_tdetl_mqtt_target(benchmark, mosquitto: Mosquitto, backup: Any) -> None:  # noqa: F811
    bk, _ = backup
    s = benchmark.pedantic(tdetl.run, args=(f"local:{bk}", f"mqtt://127.0.0.1:{mosquitto.port}?topic=bench/{{tbname}}"),
                           rounds=3, warmup_rounds=1)
    assert s.rows_written == N
    _rate(benchmark)


def test_baseline_kafka_python_acks_all(benchmark, tansu: Tansu, backup: Any) -> None:  # noqa: F811
    from kafka import KafkaProducer

    _, messages = backup

    def send() -> None:
        p = KafkaProducer(bootstrap_servers=tansu.bootstrap, acks="all", linger_ms=5)
        topic = f"bare{uuid.uuid4().hex[:6]}"
        for _, payload in messages:
            p.send(topic, payload)
        p.flush()
        p.close()
    benchmark.pedantic(send, rounds=3, warmup_rounds=1)
    _rate(benchmark)


def test_tdetl_kafka_target(benchmark, tansu: Tansu, backup: Any) -> None:  # noqa: F811
    bk, _ = backup

    def target() -> tuple[tuple[str, str], dict[str, Any]]:
        return (f"local:{bk}", f"kafka://{tansu.bootstrap}?topic=t{uuid.uuid4().hex[:6]}"), {}
    s = benchmark.pedantic(tdetl.run, setup=target, rounds=3, warmup_rounds=1)
    assert s.rows_written == N
    _rate(benchmark)
