"""The kafka source against a real Kafka-protocol broker (tansu, memory storage) on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest

import tdetl
from tdetl.drivers.kafka.source import parse_fallback, parse_topic_partitions
from tdetl.errors import DataError, DsnError

from .conftest import ROOT, run_cli
from .services import Tansu

SEED_PARSER = {"parse": {"ts": {"as": "timestamp(ms)"}, "topic": {"as": "varchar", "alias": "t"},
                         "partition": {"as": "int", "alias": "p"}, "offset": {"as": "bigint", "alias": "o"},
                         "key": {"as": "binary", "alias": "k"}, "value": {"as": "binary", "alias": "v"}},
               "model": [{"name": "t_{t}", "using": "kafka_data", "tags": ["t", "p"],
                          "columns": ["ts", "o", "k", "v"]}]}
JSON_PARSER = {"parse": {"value": {"json": ["id::int", "ts::timestamp(ms)", "temp::double", "dev::varchar(16)"]}},
               "model": {"name": "dev_{dev}", "using": "readings", "tags": ["dev"], "columns": ["ts", "id", "temp"]}}


def _topic(broker: Tansu, partitions: int = 3) -> str:
    from kafka.admin import KafkaAdminClient, NewTopic

    name = f"t{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(name, partitions, 1)])
    admin.close()
    return name


def _produce(broker: Tansu, topic: str, values: list[bytes], keys: list[bytes] | None = None) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    for i, v in enumerate(values):
        p.send(topic, v, key=keys[i] if keys else str(i).encode())
    p.flush()
    p.close()


def _reading(i: int) -> bytes:
    return json.dumps({"id": i, "ts": 1_700_000_000_000 + i, "temp": i / 4, "dev": f"d{i % 4}"}).encode()


def _rows(db: Path, sql: str) -> list[Any]:
    with duckdb.connect(str(db)) as con:
        return con.execute(sql).fetchall()


def test_params_parse_and_refuse() -> None:
    assert parse_topic_partitions("tp1:0..2,tp2:1", "w") == [("tp1", 0), ("tp1", 1), ("tp1", 2), ("tp2", 1)]
    assert parse_fallback("ByTime(1700000000000)", "w") == ("bytime", 1_700_000_000_000)
    assert parse_fallback("Latest", "w") == ("latest", None)
    for bad, match in (("tp1:2..1", "empty range"), ("tp1", "is not <topic>:<n>")):
        with pytest.raises(DsnError, match=match):
            parse_topic_partitions(bad, "w")
    with pytest.raises(DsnError, match="fallback_offset='Sometime'"):
        parse_fallback("Sometime", "w")
    res = run_cli("run", "-f", "kafka://u:s3cret@127.0.0.1:9/?group=g", "-t", "duckdb:/tmp/x.duckdb")
    assert res.returncode == 1 and "topics=" in res.stderr and "s3cret" not in res.stderr


def test_without_parser_each_message_is_a_row(tansu: Tansu, tmp_path: Path) -> None:
    topic = _topic(tansu)
    _produce(tansu, topic, [f"v{i}".encode() for i in range(300)])
    out = tmp_path / "k.duckdb"
    s = tdetl.run(f"kafka://{tansu.bootstrap}?session_timeout=2s&group=g{uuid.uuid4().hex[:6]}&topics={topic}&timeout=1500",
                  f"duckdb:{out}")
    assert s.rows_written == 300
    rows = _rows(out, "SELECT topic, partition, \"offset\", key, value FROM kafka_data")
    assert {(r[3], r[4]) for r in rows} == {(str(i).encode(), f"v{i}".encode()) for i in range(300)}
    assert {r[0] for r in rows} == {topic} and {r[1] for r in rows} == {0, 1, 2}
    per_partition = sorted((p, o) for _, p, o, _, _ in rows)
    for part in (0, 1, 2):
        offsets = [o for p, o in per_partition if p == part]
        assert offsets == list(range(len(offsets)))


def test_seed_parser_makes_a_table_per_topic_and_partition(tansu: Tansu, tmp_path: Path) -> None:
    topic = _topic(tansu, 2)
    _produce(tansu, topic, [b"x%d" % i for i in range(50)])
    out = tmp_path / "k.duckdb"
    tdetl.run(f"kafka://{tansu.bootstrap}?session_timeout=2s&group=g{uuid.uuid4().hex[:6]}&topics={topic}&timeout=1500",
              f"duckdb:{out}", parser=json.dumps(SEED_PARSER))
    rows = _rows(out, "SELECT tbname, t, count(*), count(DISTINCT v) FROM kafka_data GROUP BY ALL")
    assert rows == [(f"t_{topic}", topic, 50, 50)]  # the seed's template names one table per topic


def test_json_inside_the_value_and_bad_messages_follow_the_policy(tansu: Tansu, tmp_path: Path) -> None:
    topic = _topic(tansu, 1)
    values = [_reading(i) for i in range(100)]
    values[10] = b"{not json"
    values[20] = json.dumps({"id": "twenty", "ts": 1, "temp": 0, "dev": "d0"}).encode()
    _produce(tansu, topic, values)
    url = f"kafka://{tansu.bootstrap}?session_timeout=2s&topics={topic}&timeout=1500&group=g{uuid.uuid4().hex[:6]}"
    with pytest.raises(DataError, match=rf"message {topic}/0@10: not JSON"):
        tdetl.run(url, f"duckdb:{tmp_path / 'a.duckdb'}", parser=json.dumps(JSON_PARSER))
    archive = tmp_path / "bad.jsonl"
    out = tmp_path / "b.duckdb"
    s = tdetl.run(url.replace("&group=", "&group=x"), f"duckdb:{out}", parser=json.dumps(JSON_PARSER),
                  on_error=f"archive:{archive}")
    assert s.rows_written == 98 and s.rows_failed == 2
    bad = [json.loads(line) for line in archive.read_text().splitlines()]
    assert len(bad) == 2 and "not JSON" in bad[0]["reason"] and "'id'" in bad[1]["reason"]
    got = _rows(out, "SELECT id, temp, dev, tbname FROM readings ORDER BY id")
    want = [(i, i / 4, f"d{i % 4}", f"dev_d{i % 4}") for i in range(100) if i not in (10, 20)]
    assert got == want


def test_group_of_two_consumers_reads_every_message(tansu: Tansu, tmp_path: Path) -> None:
    topic = _topic(tansu, 4)
    _produce(tansu, topic, [_reading(i) for i in range(400)])
    out = tmp_path / "g.duckdb"
    tdetl.run(f"kafka://{tansu.bootstrap}?session_timeout=2s&group=g{uuid.uuid4().hex[:6]}&topics={topic}&timeout=3000",
              f"duckdb:{out}", parser=json.dumps(JSON_PARSER), jobs=2)
    assert {r[0] for r in _rows(out, "SELECT id FROM readings")} == set(range(400))


def _committed(broker: Tansu, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    got = {p: c.committed(TopicPartition(topic, p)) for p in range(partitions)}
    c.close()
    return got


def test_offsets_are_committed_only_after_the_sink_has_the_rows(tansu: Tansu, tmp_path: Path) -> None:
    topic = _topic(tansu, 1)
    _produce(tansu, topic, [_reading(i) for i in range(50)] + [b"{broken"] + [_reading(i) for i in range(51, 60)])
    group = f"g{uuid.uuid4().hex[:6]}"
    url = f"kafka://{tansu.bootstrap}?session_timeout=2s&topics={topic}&timeout=1500&group={group}&batch_size=10"
    with pytest.raises(DataError):
        tdetl.run(url, f"duckdb:{tmp_path / 'a.duckdb'}", parser=json.dumps(JSON_PARSER))
    assert _committed(tansu, group, topic, 1) == {0: None}  # DuckDB rolled back: nothing is acknowledged
    s = tdetl.run(url, f"duckdb:{tmp_path / 'b.duckdb'}", parser=json.dumps(JSON_PARSER), on_error="drop")
    assert s.rows_written == 59
    assert _committed(tansu, group, topic, 1) == {0: 60}


def test_kill_9_mid_stream_then_rerun_loses_nothing(tansu: Tansu, tmp_path: Path) -> None:
    topic = _topic(tansu, 2)
    total = 6000
    _produce(tansu, topic, [_reading(i) for i in range(total)])
    group = f"g{uuid.uuid4().hex[:6]}"
    parser = tmp_path / "p.json"
    parser.write_text(json.dumps(JSON_PARSER))
    bk = tmp_path / "bk"
    args = [sys.executable, "-m", "tdetl", "run", "-q", "-p", f"@{parser}", "-t", f"local:{bk}?file_rows=500",
            "-f", f"kafka://{tansu.bootstrap}?session_timeout=2s&topics={topic}&group={group}&batch_size=200&timeout=2000"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE)
    journal = bk / "journal.jsonl"
    end = time.monotonic() + 60
    while time.monotonic() < end and not (journal.exists() and journal.read_text().count("\n") >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert journal.exists(), "the first run wrote nothing before it was killed"
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode() if proc.stderr else ""
    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "all.duckdb"
    tdetl.run(f"local:{bk}", f"duckdb:{out}")
    ids = [r[0] for r in _rows(out, "SELECT id FROM readings")]
    assert set(ids) == set(range(total))  # every message landed (a replayed one may land twice)


def test_text_messages_through_regex_convert_and_mapping(tansu: Tansu, tmp_path: Path) -> None:
    """Plain-text values (not JSON): a regex with named groups makes the fields."""
    topic = _topic(tansu, 1)
    states = ["0", "1", "2"]
    _produce(tansu, topic, [f"dev=d{i % 3};ts={1_700_000_000_000 + i};temp={i * 0.5};state={states[i % 3]}".encode()
                            for i in range(90)] + [b"garbled"])
    parser = {"parse": {"value": {"as": "varchar"}},
              "transform": [
                  {"regex": "value", "pattern": r"^dev=(?<dev>\w+);ts=(?<ts>\d+);temp=(?<temp>[\d.]+);state=(?<st>\d)$",
                   "as": {"ts": "timestamp(ms)", "temp": "double"}},
                  {"convert": "st", "map": {"0": "idle", "1": "run"}, "default": "fault"}],
              "model": {"name": "${dev}", "using": "plant", "tags": ["dev"], "columns": ["ts", "temp", "st", "f"],
                        "mapping": {"f": {"expr": "temp * 9 / 5 + 32"}}}}
    url = f"kafka://{tansu.bootstrap}?session_timeout=2s&topics={topic}&timeout=1500&group=g{uuid.uuid4().hex[:6]}"
    out = tmp_path / "t.duckdb"
    archive = tmp_path / "bad.jsonl"
    s = tdetl.run(url, f"duckdb:{out}", parser=json.dumps(parser), on_error=f"archive:{archive}")
    assert (s.rows_written, s.rows_failed) == (90, 1)
    bad = json.loads(archive.read_text())
    assert bad["record"]["message"] == "garbled" and bad["record"]["offset"] == 90
    assert f"message {topic}/0@90" in bad["reason"] and "does not match the pattern" in bad["reason"]
    got = _rows(out, "SELECT tbname, epoch_ms(ts), temp, st, f FROM plant ORDER BY ts")
    assert got == [(f"d{i % 3}", 1_700_000_000_000 + i, i * 0.5, ["idle", "run", "fault"][i % 3],
                    pytest.approx(i * 0.5 * 9 / 5 + 32)) for i in range(90)]


def test_bytime_fallback_seeks_by_timestamp(tansu: Tansu, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ByTime below the broker: tansu answers ListOffsets-by-time with offset 0 whatever the time
    (spec/services.md), so the consumer's lookup is answered from the records' real timestamps,
    read back from the broker; our side must seek there and commit nothing until the sink has rows."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.structs import OffsetAndTimestamp

    topic = _topic(tansu, 2)
    p = KafkaProducer(bootstrap_servers=tansu.bootstrap)
    base = 1_700_000_000_000
    for i in range(60):
        p.send(topic, _reading(i), partition=i % 2, timestamp_ms=base + i * 1000)
    p.flush()
    p.close()

    def offsets_for_times(self: Any, query: dict[Any, int]) -> dict[Any, Any]:
        reader = KafkaConsumer(bootstrap_servers=tansu.bootstrap, enable_auto_commit=False)
        reader.assign(list(query))
        reader.seek_to_beginning()
        records = [r for recs in reader.poll(timeout_ms=3000, max_records=1000).values() for r in recs]
        reader.close()
        out: dict[Any, Any] = {}
        for tp, ms in query.items():
            hits = sorted((r.offset, r.timestamp) for r in records if r.partition == tp.partition and r.timestamp >= ms)
            out[tp] = OffsetAndTimestamp(hits[0][0], hits[0][1], -1) if hits else None
        return out

    monkeypatch.setattr(KafkaConsumer, "offsets_for_times", offsets_for_times)
    group = f"g{uuid.uuid4().hex[:6]}"
    url = (f"kafka://{tansu.bootstrap}?session_timeout=2s&topics={topic}&timeout=1500&group={group}"
           f"&fallback_offset=ByTime({base + 40_000})")
    out = tmp_path / "b.duckdb"
    tdetl.run(url, f"duckdb:{out}", parser=json.dumps(JSON_PARSER))
    assert [r[0] for r in _rows(out, "SELECT id FROM readings ORDER BY id")] == list(range(40, 60))
    assert _committed(tansu, group, topic, 2) == {0: 30, 1: 30}
    # a committed group ignores the fallback: a rerun starts where it stopped (nothing new)
    again = tdetl.run(url, f"duckdb:{tmp_path / 'c.duckdb'}", parser=json.dumps(JSON_PARSER))
    assert again.rows_written == 0


def test_lag_is_what_the_high_watermarks_are_ahead(tansu: Tansu) -> None:
    """The source's lag (tdetl serve's metric): messages between what it read and each partition's
    high watermark, as the fetch reported it."""
    from tdetl.api import make_options
    from tdetl.drivers import open_source

    topic = _topic(tansu, 1)
    _produce(tansu, topic, [_reading(i) for i in range(1000)])
    src = open_source(f"kafka://{tansu.bootstrap}?topics={topic}&group=lag{uuid.uuid4().hex[:6]}&batch_size=100"
                      "&session_timeout=2s&timeout=2s", make_options())
    try:
        assert src.lag() is None  # nothing fetched yet
        src.catalog()
        batches = src.read(src.partitions()[0])
        first = next(batches)
        assert 0 < first.num_rows <= 100 and src.lag() == (1000.0 - first.num_rows, "offsets")
        rows = first.num_rows + sum(b.num_rows for b in batches)
        assert rows == 1000 and src.lag() == (0.0, "offsets")
    finally:
        src.close()
