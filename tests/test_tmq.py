"""``tmq://`` and ``tmq+ws://`` on the bundled server: replication of a live database (schema and
tag changes, new and dropped tables), kill -9 and rerun, decoded reading into other sinks, the
Python subscription API, and the errors a user meets first."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import jsonschema
import pytest

import tdetl
from tdetl.drivers.tmq.group import parse_offsets
from tdetl.errors import DsnError

from .taos_helpers import SERVERS, connect, pytestmark, sql, taospy_rows  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
BASE = 1_700_000_000_000
TABLES = 50


def tmq(server: str) -> str:
    return server.replace("taos", "tmq", 1)


class Writer(threading.Thread):
    """Inserts into 50 child tables while a run reads, and changes the schema on the way: a new
    column, new child tables, a tag update, a dropped table."""

    def __init__(self, server: str, db: str, rounds: int = 6, pause: float = 0.3) -> None:
        super().__init__(daemon=True)
        self.server, self.db, self.rounds, self.pause = server, db, rounds, pause
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with connect(self.server, self.db) as conn:
                for r in range(self.rounds):
                    with_phase = r >= 2
                    if r == 2:
                        conn.execute("ALTER STABLE meters ADD COLUMN phase FLOAT")
                    if r == 3:
                        conn.execute("CREATE TABLE d50 USING meters TAGS (50, 'new')")
                        conn.execute(f"INSERT INTO d51 USING meters TAGS (51, 'auto') VALUES ({BASE}, 1.0, 1, 0.5)")
                        conn.execute("ALTER TABLE d3 SET TAG location = 'moved'")
                        conn.execute("DROP TABLE d7")
                    tables = [f"d{i}" for i in range(TABLES) if not (r >= 3 and i == 7)] + (["d50"] if r >= 3 else [])
                    parts = []
                    for t in tables:
                        vals = " ".join(f"({BASE + (100 + r * 20 + k) * 1000}, {k / 4}, {r * 100 + k}"
                                        + (f", {k / 8})" if with_phase else ")") for k in range(20))
                        parts.append(f"{t} {'(ts, current, voltage, phase)' if with_phase else ''} VALUES {vals}")
                    conn.execute("INSERT INTO " + " ".join(parts))
                    time.sleep(self.pause)
        except BaseException as e:  # reported by the test
            self.error = e


def make_source(server: str, db: str) -> None:
    sql(server, f"CREATE DATABASE `{db}` VGROUPS 2 WAL_RETENTION_PERIOD 3600",
        f"CREATE STABLE `{db}`.meters (ts TIMESTAMP, current FLOAT, voltage INT)"
        " TAGS (groupid INT, location VARCHAR(24))",
        f"CREATE TABLE `{db}`.n1 (ts TIMESTAMP, q DOUBLE)",
        f"INSERT INTO `{db}`.n1 VALUES ({BASE}, 1.5) ({BASE + 1000}, NULL)")
    parts = " ".join(f"`{db}`.d{i} USING `{db}`.meters TAGS ({i}, 'loc{i % 5}') VALUES "
                     + " ".join(f"({BASE + k * 1000}, {k / 2}, {i * 1000 + k})" for k in range(100))
                     for i in range(TABLES))
    sql(server, "INSERT INTO " + parts)


def snapshot(db: str) -> dict[str, Any]:
    """What a copy must equal: rows with tags, the super table's schema, the tables."""
    rows = sorted(taospy_rows(db, "SELECT tbname, groupid, location, CAST(ts AS BIGINT), current, voltage, phase"
                                  " FROM meters"), key=repr)
    schema = [tuple(r[:4]) for r in taospy_rows(db, "DESCRIBE meters")]
    tables = sorted(r[0] for r in taospy_rows(db, f"SELECT table_name FROM information_schema.ins_tables"
                                                  f" WHERE db_name = '{db}'"))
    normal = sorted(taospy_rows(db, "SELECT CAST(ts AS BIGINT), q FROM n1"), key=repr)
    return {"rows": rows, "schema": schema, "tables": tables, "n1": normal}


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the runs keep per-group state (tables a database topic stopped delivering)."""
    monkeypatch.setenv("TDETL_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture(params=SERVERS or ["unset"], ids=lambda s: s.split(":")[0])
def tmq_server(request: pytest.FixtureRequest) -> str:
    return request.param


def test_live_database_replicates_rows_schema_and_tags(tmq_server: str, scratch: Any) -> None:
    src, dst = scratch("tdetl_tmq_src"), scratch("tdetl_tmq_dst")
    make_source(tmq_server, src)
    writer = Writer(tmq_server, src)
    result: dict[str, Any] = {}

    def replicate() -> None:
        try:
            result["summary"] = tdetl.run(f"{tmq(tmq_server)}/{src}?timeout=4s", f"{tmq_server}/{dst}?assert")
        except BaseException as e:
            result["error"] = e
    run = threading.Thread(target=replicate)
    run.start()
    time.sleep(0.5)
    writer.start()
    writer.join(60)
    run.join(120)
    assert writer.error is None, writer.error
    assert "error" not in result, result.get("error")
    want, got = snapshot(src), snapshot(dst)
    assert got["schema"] == want["schema"]
    assert got["tables"] == want["tables"] and "d7" not in got["tables"] and "d51" in got["tables"]
    assert ("d3", 3, "moved") in {r[:3] for r in got["rows"]}
    missing = sorted(set(want["rows"]) - set(got["rows"]))
    assert not missing, (len(missing), missing[:5], missing[-5:])
    assert got["rows"] == want["rows"]
    assert got["n1"] == want["n1"]
    assert len(want["rows"]) > TABLES * 100
    assert tdetl.verify(f"{tmq_server}/{src}", f"{tmq_server}/{dst}")["differences"] == []
    assert result["summary"].rows_written >= len(want["rows"])


def _reading_the_wal(server: str, topic: str) -> None:
    """Wait until every vgroup of the topic is held by a consumer reading the WAL."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with connect(server) as conn:
                rows = conn.query("SELECT consumer_id, `offset` FROM information_schema.ins_subscriptions"
                                  f" WHERE topic_name = '{topic}'").table().to_pylist()
        except Exception:
            rows = []
        if rows and all(r["consumer_id"] and str(r["offset"]).startswith("wal:") for r in rows):
            return
        time.sleep(0.1)
    raise AssertionError(f"no consumer of {topic} reached the WAL in 60 s")


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tdetl", "run", *args, "-q"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_kill_9_twice_then_rerun_loses_nothing_and_doubles_nothing(tmq_server: str, scratch: Any) -> None:
    src, dst = scratch("tdetl_tmq_k9"), scratch("tdetl_tmq_k9d")
    make_source(tmq_server, src)
    writer = Writer(tmq_server, src, rounds=10, pause=0.4)
    args = ("-f", f"{tmq(tmq_server)}/{src}?timeout=never", "-t", f"{tmq_server}/{dst}?assert")
    writer.start()
    for delay in (2.5, 1.5):
        p = _cli(*args)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    writer.join(60)
    assert writer.error is None, writer.error
    final = _cli("-f", f"{tmq(tmq_server)}/{src}?timeout=3s", "-t", f"{tmq_server}/{dst}?assert")
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err
    want, got = snapshot(src), snapshot(dst)
    assert got == want
    # none twice: TDengine keeps one row per (table, ts), and the counts agree with the source
    count = taospy_rows(dst, "SELECT COUNT(*) FROM meters")[0][0]
    assert count == len(want["rows"])
    assert tdetl.verify(f"{tmq_server}/{src}", f"{tmq_server}/{dst}")["differences"] == []


def test_decoded_reading_into_duckdb_and_a_renaming_target(tmq_server: str, scratch: Any, tmp_path: Path) -> None:
    src, dst = scratch("tdetl_tmq_dec"), scratch("tdetl_tmq_decd")
    make_source(tmq_server, src)
    sql(tmq_server, f"ALTER TABLE `{src}`.d3 SET TAG location = 'moved'")
    s = tdetl.run(f"{tmq(tmq_server)}/{src}?timeout=1s", f"duckdb:{tmp_path / 'x.duckdb'}")
    assert s.rows_written == TABLES * 100 + 2
    with duckdb.connect(str(tmp_path / "x.duckdb")) as c:
        got = sorted(c.sql("SELECT tbname, groupid, location, epoch_ms(ts), current, voltage FROM meters").fetchall())
    want = sorted(r[:6] for r in taospy_rows(src, "SELECT tbname, groupid, location, CAST(ts AS BIGINT), current,"
                                                  " voltage FROM meters"))
    assert [tuple(r) for r in got] == want
    # a super table's topic into a renaming target, which cannot take raw messages: decoded batches
    s2 = tdetl.run(f"{tmq(tmq_server)}/{src}.meters?timeout=1s", f"{tmq_server}/{dst}.renamed?assert")
    assert s2.rows_written == TABLES * 100
    got2 = sorted(taospy_rows(dst, "SELECT tbname, groupid, location, CAST(ts AS BIGINT), current, voltage"
                                   " FROM renamed"))
    assert got2 == want


def test_subscribe_yields_batches_and_commits(tmq_server: str, scratch: Any) -> None:
    src = scratch("tdetl_tmq_sub")
    make_source(tmq_server, src)
    seen: dict[str, int] = {}
    with tdetl.subscribe(f"{tmq(tmq_server)}/{src}.meters?timeout=1s&group.id=sub1") as sub:
        for spec, batch in sub:
            assert spec.stable == "meters" and spec.tag_dict["groupid"] == int(spec.name[1:])
            seen[spec.name] = seen.get(spec.name, 0) + batch.num_rows
        sub.commit()
    assert seen == {f"d{i}": 100 for i in range(TABLES)}
    # committed: the same group reads nothing more until new rows arrive
    sql(tmq_server, f"INSERT INTO `{src}`.d1 VALUES ({BASE + 999_000}, 9.5, 9)")
    with tdetl.subscribe(f"{tmq(tmq_server)}/{src}.meters?timeout=1s&group.id=sub1") as sub:
        again = [(spec.name, batch.num_rows) for spec, batch in sub]
    assert again == [("d1", 1)]


def _error(*args: str) -> str:
    p = _cli(*args)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "taosdata" not in err
    return lines[0]


def test_bad_input_gets_one_line_errors(tmq_server: str, scratch: Any) -> None:
    src, other = scratch("tdetl_tmq_bad"), scratch("tdetl_tmq_bad2")
    make_source(tmq_server, src)
    target = f"{tmq_server}/{other}?assert"
    line = _error("-f", f"{tmq(tmq_server)}/no_such_db_here", "-t", target)
    assert "database 'no_such_db_here' does not exist" in line
    sql(tmq_server, f"CREATE DATABASE `{other}` WAL_RETENTION_PERIOD 0")
    line = _error("-f", f"{tmq(tmq_server)}/{other}", "-t", f"{tmq_server}/{src}")
    assert "[0x038C] WAL retention period is zero" in line
    assert f"ALTER DATABASE {other} WAL_RETENTION_PERIOD 3600" in line
    sql(tmq_server, f"CREATE TOPIC `tdetl_{src}_meta` AS STABLE `{src}`.meters")
    line = _error("-f", f"{tmq(tmq_server)}/{src}", "-t", target)
    assert f"topic 'tdetl_{src}_meta' exists as" in line and "topic=" in line
    line = _error("-f", f"{tmq(tmq_server)}/{src}?with.meta=false&offset=999999:0", "-t", target)
    assert "offset=999999:0 names vgroup 999999" in line and "its vgroups:" in line
    line = _error("-f", f"{tmq(tmq_server)}/{src}?topic=nope_topic", "-t", target)
    assert "topic='nope_topic' does not exist" in line


def test_the_default_group_follows_source_and_target_not_run_parameters() -> None:
    from tdetl.api import make_options
    from tdetl.drivers import open_source

    def group(source: str, target: str) -> str:
        opts = make_options()
        opts.target = target
        return open_source(source, opts).group.name  # type: ignore[attr-defined,no-any-return]
    a = group("tmq://root:secret@h:6030/db?timeout=never", "taos://h2:6030/db2?assert")
    assert a == group("tmq://root:other@h:6030/db?timeout=3s", "taos://h2:6030/db2")
    assert a != group("tmq://root:secret@h:6030/db", "local:/backup") and a.startswith("tdetl-")
    assert group("tmq://h:6030/db?group.id=mine", "local:/x") == "mine"


def test_offset_parameter_is_parsed_strictly() -> None:
    assert parse_offsets("2:10, 3:0", "x") == {2: 10, 3: 0}
    for bad in ("2", "a:1", "2:x", "2;3"):
        with pytest.raises(DsnError, match="is not <vgroup_id>:<offset>"):
            parse_offsets(bad, "tmq://h/db")


def test_incremental_backup_adds_runs_and_restores_equal(tmq_server: str, scratch: Any, tmp_path: Path) -> None:
    src, back, upto = scratch("tdetl_tmq_inc"), scratch("tdetl_tmq_incr"), scratch("tdetl_tmq_inc1")
    make_source(tmq_server, src)
    backup = f"local:{tmp_path / 'backup'}"
    first = tdetl.run(f"{tmq(tmq_server)}/{src}?timeout=1s", backup)
    assert first.rows_written == TABLES * 100 + 2
    sql(tmq_server, f"INSERT INTO `{src}`.d1 VALUES ({BASE + 500_000}, 5.5, 5)",
        f"INSERT INTO `{src}`.d60 USING `{src}`.meters TAGS (60, 'late') VALUES ({BASE}, 6.5, 6)",
        f"CREATE STABLE `{src}`.other (ts TIMESTAMP, x INT) TAGS (k INT)",
        f"INSERT INTO `{src}`.o1 USING `{src}`.other TAGS (1) VALUES ({BASE}, 1) ({BASE + 1000}, NULL)",
        f"ALTER STABLE `{src}`.meters ADD COLUMN phase FLOAT",
        f"INSERT INTO `{src}`.d2 (ts, current, voltage, phase) VALUES ({BASE + 600_000}, 1.0, 2, 0.5)")
    second = tdetl.run(f"{tmq(tmq_server)}/{src}?timeout=1s", backup)
    assert second.rows_written == 5  # only what changed
    res = subprocess.run([sys.executable, "-m", "tdetl", "inspect", backup], capture_output=True, text=True)
    assert res.returncode == 0 and "run 1:" in res.stdout and "run 2:" in res.stdout
    assert f"{TABLES * 100 + 2:,} rows in" in res.stdout and "5 rows in" in res.stdout
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    jsonschema.validate(manifest, json.loads((ROOT / "formats" / "backup.schema.json").read_text()))
    assert [r["run"] for r in manifest["runs"]] == [1, 2] and {f["run"] for f in manifest["files"]} == {1, 2}
    assert all(":" in k for k in manifest["runs"][1]["positions"]["consumer-0"]["offsets"])
    tdetl.run(backup, f"{tmq_server}/{back}?assert")
    assert tdetl.verify(f"{tmq_server}/{src}", f"{tmq_server}/{back}")["differences"] == []
    assert snapshot(back) == snapshot(src)
    assert sorted(taospy_rows(back, "SELECT CAST(ts AS BIGINT), x FROM other"), key=repr) == \
        sorted(taospy_rows(src, "SELECT CAST(ts AS BIGINT), x FROM other"), key=repr)
    # restore up to the first run: what the source held then
    early = tdetl.run(f"{backup}?until=1", f"{tmq_server}/{upto}?assert")
    assert early.rows_written == TABLES * 100 + 2
    with pytest.raises(tdetl.TdetlError, match=r"until=3: the backup has runs 1..2"):
        tdetl.run(f"{backup}?until=3", f"{tmq_server}/{upto}")


def test_a_backup_keeps_rows_of_a_table_whose_tag_changed_while_subscribed(tmq_server: str, scratch: Any,
                                                                           tmp_path: Path, state_dir: Path) -> None:
    """The decoded path meets the server's database-topic fault too: the changed table's rows are
    copied by query (drivers/tmq/repair.py), so the backup restores equal to the source."""
    src, back = scratch("tdetl_tmq_tag"), scratch("tdetl_tmq_tagr")
    make_source(tmq_server, src)
    backup = f"local:{tmp_path / 'b'}"
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["summary"] = tdetl.run(f"{tmq(tmq_server)}/{src}?timeout=3s", backup)
        except BaseException as e:
            result["error"] = e
    t = threading.Thread(target=run)
    t.start()
    _reading_the_wal(tmq_server, f"tdetl_{src}_meta")  # the fault needs a subscription that is past its snapshot
    sql(tmq_server, f"ALTER TABLE `{src}`.d3 SET TAG location = 'moved'",
        f"INSERT INTO `{src}`.d3 VALUES ({BASE + 700_000}, 7.5, 7) `{src}`.d4 VALUES ({BASE + 700_000}, 8.5, 8)")
    t.join(60)
    assert "error" not in result, result.get("error")
    assert list(state_dir.glob("tmq/*.json")), "the changed table was not recorded"
    tdetl.run(backup, f"{tmq_server}/{back}?assert")
    assert tdetl.verify(f"{tmq_server}/{src}", f"{tmq_server}/{back}")["differences"] == []


def test_a_rerun_warns_when_the_wal_may_have_been_purged_since_the_last(tmq_server: str, scratch: Any,
                                                                        tmp_path: Path, state_dir: Path) -> None:
    src = scratch("tdetl_tmq_lag")
    make_source(tmq_server, src)
    args = ("-f", f"{tmq(tmq_server)}/{src}?timeout=1s", "-t", f"local:{tmp_path / 'b'}")
    first = _cli(*args)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    marks = list(state_dir.glob("tmq/*.finished"))
    assert len(marks) == 1
    sql(tmq_server, f"ALTER DATABASE `{src}` WAL_RETENTION_PERIOD 60")
    again = _cli(*args)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0 and "keeps its WAL" not in err  # the last run is recent
    hour_ago = time.time() - 3600
    os.utime(marks[0], (hour_ago, hour_ago))
    late = _cli(*args)
    _, err = late.communicate(timeout=120)
    assert late.returncode == 0, err
    assert re.search(rf"finished 360\d s ago and database {src} keeps its WAL 60 s", " ".join(err.split())), err


def test_lag_counts_wal_entries_behind_and_reads_0_once_caught_up(tmq_server: str, scratch: Any) -> None:
    """tdetl serve's lag for TMQ: WAL entries between what the consumer read and the vgroups' ends."""
    src = scratch("tdetl_tmq_behind")
    make_source(tmq_server, src)
    sql(tmq_server, *(f"INSERT INTO `{src}`.d{k % 4} VALUES ({BASE + (500 + k) * 1000}, 1.0, {k})" for k in range(40)))
    dsn = f"{tmq(tmq_server)}/{src}.meters?timeout=3s&experimental.snapshot.enable=false&group.id=lag1"
    with tdetl.subscribe(dsn) as sub:
        assert sub.source.lag() is None  # nothing polled yet
        rows, first = 0, None
        for _spec, batch in sub:
            rows += batch.num_rows
            first = first or sub.source.lag()
        assert rows == TABLES * 100 + 40
        assert first is not None and first.unit == "offsets" and first.value >= 10  # the 40 inserts were ahead
        assert sub.source.lag() == (0.0, "offsets")  # caught up: the entries no consumer gets do not count
