"""Data-quality strategies (``--on``) on real components: Kafka messages with each kind of defect,
consumed by tansu, written into the bundled TDengine and read back with taospy."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

import tdetl
from tdetl.errors import ConfigError, DataError
from tdetl.quality import Rejects, Strategies

from .conftest import run_cli
from .services import Tansu
from .taos_helpers import SERVERS, scratch_db, sql, taospy_rows
from .test_kafka import _produce, _topic

pytestmark = [pytest.mark.taos, pytest.mark.skipif(not SERVERS, reason="no TDengine server: set TDETL_TEST_TAOS")]

PARSER = {"parse": {"value": {"json": ["id::int", "ts::timestamp(ms)", "temp::double", "dev::varchar(250)",
                                       "note::varchar(8)"]}},
          "model": {"name": "{dev}", "using": "readings", "tags": ["dev"], "columns": ["ts", "id", "temp", "note"]}}
T0 = 1_700_000_000_000
LONG = "x" * 200


def _msg(i: int, **over: Any) -> bytes:
    doc = {"id": i, "ts": T0 + i, "temp": i / 4, "dev": f"d{i % 2}", "note": "ok"}
    doc.update(over)
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


# one message per situation the parser meets, between good ones
DEFECTS = [
    _msg(0), _msg(1),
    _msg(2, dev=LONG),  # name-too-long
    _msg(3, dev="a.b"),  # name-illegal
    _msg(4, dev=None),  # name-var-null
    _msg(5, ts=None),  # ts-null
    _msg(6, temp="hot"),  # type-mismatch
    _msg(7, note="far too long"),  # value-too-long
    _msg(8), _msg(9),
]


@pytest.fixture(scope="module")
def defects(tansu: Tansu) -> str:
    topic = _topic(tansu, 1)
    _produce(tansu, topic, DEFECTS)
    return topic


def _kafka(tansu: Tansu, topic: str) -> str:
    return (f"kafka://{tansu.bootstrap}?session_timeout=2s&group=g{uuid.uuid4().hex[:6]}&topics={topic}"
            "&timeout=1500")


def test_strategies_parse_and_refuse() -> None:
    s = Strategies.parse(["ts-null=now", "name-illegal=replace:-", "archive=/tmp/a", "retry-for=5s"])
    assert s.chosen["ts-null"] == ("now", None) and s.chosen["name-illegal"] == ("replace", "-")
    assert s.setting("retry-for") == 5.0 and s.setting("cache-max-bytes") == 1 << 30
    assert Strategies.parse(["name-illegal=replace"]).chosen["name-illegal"] == ("replace", "_")
    for bad, match in (("ts-null", "expected <situation>=<choice>"), ("ts-nul=drop", "unknown situation 'ts-nul'"),
                       ("ts-null=widen", "'widen' is not a choice for ts-null"),
                       ("name-var-null=replace", "needs the text"), ("ts-null=drop:x", "takes no ':<text>'"),
                       ("archive-keep-days=-1", "must not be negative")):
        with pytest.raises(ConfigError, match=match):
            Strategies.parse([bad])
    r = Rejects(tdetl.errors.ErrorPolicy.parse("drop"), Strategies.parse(["ts-null=now"]))
    assert (r.choice("ts-null"), r.choice("type-mismatch"), r.choice("table-missing")) == ("now", "drop", "create")
    res = run_cli("run", "-f", "csv:/nonexistent.csv", "-t", "local:/tmp/x", "--on", "ts-null=later")
    assert res.returncode == 1 and res.stderr.strip() == (
        "tdetl: error: --on ts-null=later: 'later' is not a choice for ts-null (choices: error, now, archive, drop)")
    listed = run_cli("situations")
    assert listed.returncode == 0 and "value-too-long       error|truncate|truncate-and-archive|widen" in listed.stdout


def test_default_stops_at_the_first_defect_with_a_hint(tansu: Tansu, defects: str) -> None:
    for db in scratch_db("tdetl_q"):
        with pytest.raises(DataError) as e:
            tdetl.run(_kafka(tansu, defects), f"{SERVERS[0]}/{db}?assert", parser=json.dumps(PARSER))
        assert f"message {defects}/0@6: column 'temp' value 'hot' is not a valid DOUBLE" in str(e.value)
        assert str(e.value).endswith("--on type-mismatch=<archive|drop|null> handles it")
        assert "readings" not in str(taospy_rows(db, "SHOW STABLES")) or taospy_rows(
            db, "SELECT COUNT(*) FROM readings") == [(0,)]


def test_repairing_choices_keep_every_row(tansu: Tansu, defects: str, tmp_path: Path) -> None:
    """truncate, replace, now, null and truncate: ten messages, ten rows, each repaired as chosen."""
    on = ["name-too-long=truncate", "name-illegal=replace", "name-var-null=replace:unknown", "ts-null=now",
          "type-mismatch=null", "value-too-long=truncate"]
    for db in scratch_db("tdetl_q"):
        s = tdetl.run(_kafka(tansu, defects), f"{SERVERS[0]}/{db}?assert", parser=json.dumps(PARSER), on=on)
        assert (s.rows_written, s.rows_failed) == (10, 0)
        assert s.outcomes == {"name-too-long truncated": 1, "name-illegal replaced": 1, "name-var-null replaced": 1,
                              "ts-null set to now": 1, "type-mismatch nulled": 1, "value-too-long truncated": 1}
        got = {r[0]: r[1:] for r in taospy_rows(db, "SELECT id, tbname, temp, note, CAST(ts AS BIGINT) FROM readings")}
        assert sorted(got) == list(range(10))
        assert got[2][0] == "x" * 192 and got[3][0] == "a_b" and got[4][0] == "unknown"
        assert got[5][3] > T0 + 10**9  # now, not 2023
        assert got[6][1] is None and got[7][2] == "far too "
        assert [got[i][:3] for i in (0, 1, 8, 9)] == [("d0", 0.0, "ok"), ("d1", 0.25, "ok"), ("d0", 2.0, "ok"),
                                                      ("d1", 2.25, "ok")]
        line = run_cli("run", "-f", _kafka(tansu, defects), "-t", f"{SERVERS[0]}/{db}", "-p", json.dumps(PARSER),
                       *(x for o in on for x in ("--on", o)))
        assert line.returncode == 0, line.stderr
        assert "; name-illegal replaced 1, name-too-long truncated 1, name-var-null replaced 1, ts-null set to now 1" \
               ", type-mismatch nulled 1, value-too-long truncated 1" in line.stderr


def test_removing_choices_drop_or_archive_with_reasons(tansu: Tansu, defects: str, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    on = {"name-too-long": "truncate-and-archive", "name-illegal": "archive", "name-var-null": "skip",
          "ts-null": "archive", "type-mismatch": "drop", "value-too-long": "archive", "archive": str(archive)}
    parser = {**PARSER, "on": {"type-mismatch": "error"}}  # the API's (and --on's) choices win over the parser's
    for db in scratch_db("tdetl_q"):
        s = tdetl.run(_kafka(tansu, defects), f"{SERVERS[0]}/{db}?assert", parser=json.dumps(parser), on=on)
        assert (s.rows_read, s.rows_written, s.rows_failed) == (10, 5, 5)
        ids = sorted(r[0] for r in taospy_rows(db, "SELECT id FROM readings"))
        assert ids == [0, 1, 2, 8, 9]  # 2 kept truncated (and archived)
        files = list(archive.glob("archive-*.jsonl"))
        assert len(files) == 1
        kept = sorted((json.loads(x) for x in files[0].read_text().splitlines()), key=lambda d: d["record"]["id"])
        assert [(k["situation"], k["record"]["id"]) for k in kept] == [
            ("name-too-long", 2), ("name-illegal", 3), ("ts-null", 5), ("value-too-long", 7)]
        assert kept[1]["record"]["offset"] == 3 and kept[1]["reason"].endswith("'a.b'")
        assert kept[3]["record"]["note"] == "far too long" and "is longer than VARCHAR(8)" in kept[3]["reason"]


def test_archive_rotates_and_prunes(tmp_path: Path) -> None:
    from tdetl.quality import Archive

    a = Archive(tmp_path, True, file_bytes=300, keep_bytes=1000)
    for i in range(30):
        a.write("ts-null", [f"row {i}"], [{"i": i, "pad": "p" * 50}])
    files = sorted(tmp_path.glob("archive-*.jsonl"))
    assert len(files) > 1 and sum(f.stat().st_size for f in files) <= 1000 + 300
    last = [json.loads(x)["record"]["i"] for x in files[-1].read_text().splitlines()]
    assert last[-1] == 29  # the newest records are the ones kept


def _target_with(server: str, db: str, keep: str = "") -> None:
    sql(server, f"CREATE DATABASE {db} {keep}", f"CREATE STABLE {db}.readings (ts TIMESTAMP, id INT, temp DOUBLE,"
                f" note VARCHAR(4)) TAGS (dev VARCHAR(8))")


SINK_PARSER = {"parse": {"value": {"json": ["id::int", "ts::timestamp(ms)", "temp::double", "dev::varchar",
                                            "note::varchar", "extra::int"]}},
               "model": {"name": "{dev}", "using": "readings", "tags": ["dev"],
                         "columns": ["ts", "id", "temp", "note", "extra"]}}


@pytest.fixture(scope="module")
def recent(tansu: Tansu) -> str:
    """Messages against a target that keeps 3 days and declares note VARCHAR(4) and no 'extra'."""
    import time

    now = int(time.time() * 1000)
    topic = _topic(tansu, 1)
    docs = [{"id": i, "ts": now - (10 * 86_400_000 if i in (3, 4) else i), "temp": 1.0, "dev": f"d{i % 2}",
             "note": "toolong" if i == 5 else "ok", "extra": i} for i in range(8)]
    _produce(tansu, topic, [json.dumps(d).encode() for d in docs])
    return topic


def test_situations_only_the_target_sees(tansu: Tansu, recent: str, tmp_path: Path) -> None:
    """ts-out-of-keep, field-not-in-stable and value-too-long against a table someone else made."""
    server = SERVERS[0]
    for db in scratch_db("tdetl_q"):
        _target_with(server, db, "KEEP 3d DURATION 1d")
        with pytest.raises(DataError, match=r"timestamp .* is older than the database keeps \(3 days\)"):
            tdetl.run(_kafka(tansu, recent), f"{server}/{db}", parser=json.dumps(SINK_PARSER))
        with pytest.raises(DataError, match="column 'extra' not in super table 'readings'"):
            tdetl.run(_kafka(tansu, recent), f"{server}/{db}", parser=json.dumps(SINK_PARSER),
                      on=["ts-out-of-keep=drop"])
        archive = tmp_path / "a"
        s = tdetl.run(_kafka(tansu, recent), f"{server}/{db}", parser=json.dumps(SINK_PARSER),
                      on={"ts-out-of-keep": "archive", "field-not-in-stable": "drop-field",
                          "value-too-long": "truncate", "archive": str(archive)})
        assert (s.rows_read, s.rows_written, s.rows_failed) == (8, 6, 2)
        assert s.outcomes["ts-out-of-keep archived"] == 2 and s.outcomes["value-too-long truncated"] == 1
        got = sorted(taospy_rows(db, "SELECT id, note FROM readings"))
        assert got == [(0, "ok"), (1, "ok"), (2, "ok"), (5, "tool"), (6, "ok"), (7, "ok")]
        assert [c[0] for c in taospy_rows(db, "DESCRIBE readings")] == ["ts", "id", "temp", "note", "dev"]
        old = [json.loads(x) for f in archive.glob("*.jsonl") for x in f.read_text().splitlines()]
        assert sorted(o["record"]["id"] for o in old) == [3, 4] and {o["situation"] for o in old} == {"ts-out-of-keep"}

    for db in scratch_db("tdetl_q"):
        _target_with(server, db)
        s = tdetl.run(_kafka(tansu, recent), f"{server}/{db}", parser=json.dumps(SINK_PARSER),
                      on=["field-not-in-stable=add-column", "value-too-long=widen"])
        assert s.rows_written == 8
        desc = {c[0]: (c[1], c[2]) for c in taospy_rows(db, "DESCRIBE readings")}
        assert desc["extra"] == ("INT", 4) and desc["note"] == ("VARCHAR", 7)
        assert sorted(taospy_rows(db, "SELECT id, note, extra FROM readings"))[5] == (5, "toolong", 5)


def test_table_missing_error_writes_nothing(tansu: Tansu, recent: str) -> None:
    server = SERVERS[0]
    for db in scratch_db("tdetl_q"):
        _target_with(server, db)
        sql(server, "CREATE TABLE d0 USING readings TAGS ('d0')", db=db)
        with pytest.raises(DataError, match=f"table 'd1' does not exist in database '{db}'"):
            tdetl.run(_kafka(tansu, recent), f"{server}/{db}", parser=json.dumps(SINK_PARSER),
                      on=["table-missing=error", "field-not-in-stable=add-column", "value-too-long=widen"])
        assert taospy_rows(db, "SELECT COUNT(*) FROM readings") == [(0,)]


# -- unreachable: a TDengine of the test's own, stopped mid-run and started again --------------------

def _wait(cond: Any, what: str, timeout: float = 90) -> None:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


def _count(server: str, db: str) -> int:
    from .taos_helpers import scalar

    try:
        return int(scalar(server, "SELECT COUNT(*) FROM readings", db=db) or 0)
    except Exception:  # not created yet, or the server is down
        return 0


@pytest.mark.parametrize("kind", ["native", "ws", "retry"])
def test_cache_survives_the_server_stopping_and_a_kill(bundle: Any, tansu: Tansu, kind: str,
                                                       tmp_path: Path) -> None:
    """unreachable=cache: while the server is down batches go to disk and the broker's offsets move
    on; when it is back they are replayed in order, in the same run or (after kill -9) the next.
    unreachable=retry (the default): the run waits with back-off and goes on when the server is back."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = bundle.start()
    target = env["TDETL_TEST_TAOS"] if kind == "native" else env["TDETL_TEST_TAOSWS"]
    topic = _topic(tansu, 1)
    cache = tmp_path / "cache"
    group = f"g{uuid.uuid4().hex[:6]}"
    db = f"tdetl_cache_{uuid.uuid4().hex[:8]}"
    src = (f"kafka://{tansu.bootstrap}?session_timeout=2s&group={group}&topics={topic}&timeout=30000")
    args = [sys.executable, "-m", "tdetl", "run", "-f", src, "-t", f"{target}/{db}?assert", "-p",
            json.dumps(PARSER), "--on", "unreachable=cache", "--on", f"cache-dir={cache}", "-q"]
    msgs = [_msg(i) for i in range(900)]

    if kind == "retry":
        args[args.index("unreachable=cache")] = "retry-for=120s"
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    _produce(tansu, topic, msgs[:300])
    _wait(lambda: _count(target, db) == 300, "the first 300 rows written")
    bundle.stop()
    _produce(tansu, topic, msgs[300:600])
    if kind == "retry":
        time.sleep(5)  # the run retries meanwhile (over WebSocket the loss shows at once; libtaos waits itself)
        bundle.start()
        _produce(tansu, topic, msgs[600:])
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        assert _outcome(err, "unreachable retried") >= 1 and not cache.exists(), err
        assert sorted(r[0] for r in _rows_of(target, db)) == list(range(900))
        return
    _wait(lambda: cache.exists() and any(p.is_dir() and not p.name.endswith(".tmp") for p in cache.iterdir()),
          "batches cached while the server is down")
    if kind == "ws":  # killed with batches in the cache: the next run replays them
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        bundle.start()
        _produce(tansu, topic, msgs[600:])
        args[args.index(src)] = src.replace("timeout=30000", "timeout=3000")
        done = subprocess.run(args, stderr=subprocess.PIPE, text=True, timeout=180)
        err = done.stderr
        assert done.returncode == 0, err
    else:  # back within the run: replayed before what comes next
        bundle.start()
        _produce(tansu, topic, msgs[600:])
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    replayed = _outcome(err, "unreachable replayed")
    assert replayed >= 300 and (kind == "ws" or _outcome(err, "unreachable cached") == replayed), err
    ids = [r[0] for r in _rows_of(target, db)]
    assert sorted(ids) == list(range(900))  # every row, none twice
    assert not any(p for p in cache.iterdir() if p.is_dir())


def _outcome(summary: str, what: str) -> int:
    import re

    m = re.search(rf"{what} ([\d,]+)", summary)
    assert m, f"no '{what}' in the summary: {summary}"
    return int(m.group(1).replace(",", ""))


def _rows_of(server: str, db: str) -> list[tuple[Any, ...]]:
    from .taos_helpers import connect

    with connect(server, db) as conn:
        t = conn.query("SELECT id FROM readings").table()
    return [(v,) for v in t.column(0).to_pylist()]


def test_cached_rows_are_not_reported_written_and_any_run_into_the_target_replays_them(
        bundle: Any, tansu: Tansu, tmp_path: Path) -> None:
    """The cache belongs to the target (host, port, database), not to one DSN's spelling: a rerun with
    other parameters replays it. A run that leaves rows in it exits 3 and says how many wait."""
    import os
    import subprocess
    import sys

    env = bundle.start()
    target = env["TDETL_TEST_TAOSWS"]
    topic = _topic(tansu, 1)
    db = f"tdetl_cache_{uuid.uuid4().hex[:8]}"
    state_dir = tmp_path / "state"
    run_env = dict(os.environ, PYTHONUNBUFFERED="1", TDETL_STATE_DIR=str(state_dir))
    # the first run waits out the server's stop (it can take many seconds) before it goes idle; the rerun does not
    src = f"kafka://{tansu.bootstrap}?session_timeout=2s&group=g{uuid.uuid4().hex[:6]}&topics={topic}&timeout=45000"
    args = [sys.executable, "-m", "tdetl", "run", "-f", src, "-t",
            f"{target}/{db}?assert&buffer-bytes=2000&interval=20ms", "-p", json.dumps(PARSER),
            "--on", "unreachable=cache", "-q"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=run_env)
    _produce(tansu, topic, [_msg(i) for i in range(300)])
    _wait(lambda: _count(target, db) == 300, "the first 300 rows written")
    bundle.stop()
    _produce(tansu, topic, [_msg(i) for i in range(300, 600)])
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 3, err
    assert "wrote 300 rows" in err and "300 rows wait in the write cache" in err, err
    shown = subprocess.run([sys.executable, "-m", "tdetl", "cache", f"{target}/{db}"], capture_output=True,
                           text=True, env=run_env, timeout=60)
    assert shown.returncode == 0 and "300 rows in" in shown.stdout, shown.stdout + shown.stderr
    bundle.start()
    again = subprocess.run([sys.executable, "-m", "tdetl", "run", "-f", src.replace("timeout=45000", "timeout=5000"),
                            "-t", f"{target}/{db}?assert",
                            "-p", json.dumps(PARSER)], capture_output=True, text=True, env=run_env, timeout=180)
    assert again.returncode == 0, again.stderr
    assert _outcome(again.stderr, "unreachable replayed") == 300, again.stderr
    assert sorted(r[0] for r in _rows_of(target, db)) == list(range(600))
    assert "nothing waits" in subprocess.run([sys.executable, "-m", "tdetl", "cache", f"{target}/{db}"],
                                             capture_output=True, text=True, env=run_env).stdout
