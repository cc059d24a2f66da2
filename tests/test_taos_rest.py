"""The REST transport and the taos source/target over it, against the in-test REST endpoint
(tests/fakes/rest_server.py): what our client sends (auth, paths, SQL under max-sql-length) and that
data read from one database and written to another arrives equal, for 3.x and 2.x replies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import tdetl
from tdetl.dsn import parse_dsn
from tdetl.errors import TaosError
from tdetl.taos.connect import open_connection

from .conftest import run_cli
from .fakes.rest_server import Db, Emulator, RestServer, Table

METERS = ([("ts", "TIMESTAMP", 8), ("current", "FLOAT", 4), ("voltage", "INT", 4), ("phase", "FLOAT", 4)],
          [("groupid", "INT", 4), ("location", "VARCHAR", 24)])
T0 = 1_700_000_000_000


def _source_db() -> Db:
    d = Db("ms", {})
    d.stables["meters"] = METERS
    for i in range(3):
        t = Table("meters", {"groupid": i, "location": f"Califórnia.'{i}'"})
        for k in range(40 + i):
            t.rows[T0 + k * 1000] = (T0 + k * 1000, 0.5 * k, 200 + k if k % 7 else None, 0.25)
        d.tables[f"d{i}"] = t
    d.normal["notes"] = [("ts", "TIMESTAMP", 8), ("msg", "NCHAR", 16), ("ok", "BOOL", 1)]
    d.tables["notes"] = Table(None, {}, {T0: (T0, "héllo\\ 'x'", True), T0 + 5: (T0 + 5, None, False)})
    return d


def _serve(v2: bool) -> Iterator[tuple[Emulator, str]]:
    e = Emulator(v2=v2)
    e.dbs["src"] = _source_db()
    server = RestServer(e)
    yield e, f"taos+http://root:taosdata@127.0.0.1:{server.port}"
    server.close()


@pytest.fixture(params=[False, True], ids=["3.x", "2.x"])
def emu(request: pytest.FixtureRequest) -> Iterator[tuple[Emulator, str]]:
    yield from _serve(request.param)


@pytest.fixture
def emu3() -> Iterator[tuple[Emulator, str]]:
    """3.x only: realtime polling selects tags with columns from a super table."""
    yield from _serve(False)


def _content(d: Db) -> dict[str, tuple[str | None, dict, list]]:
    return {n: (t.stable, t.tags, [d_ for _, d_ in sorted(t.rows.items())]) for n, t in d.tables.items()}


def test_client_sends_basic_auth_and_names_the_database_after_use(emu: tuple[Emulator, str]) -> None:
    e, url = emu
    with open_connection(parse_dsn(url + "/")) as conn:
        conn.execute("USE `src`")
        got = conn.query("SELECT `ts`, `msg`, `ok` FROM `notes`").table()
    assert got.column("msg").to_pylist() == ["héllo\\ 'x'", None]
    assert got.column("ts").cast("int64").to_pylist() == [T0, T0 + 5]  # +08:00 in the reply, UTC here
    paths = [p for p, _ in e.statements]
    assert paths[-1].endswith("/src") and not paths[0].endswith("/src")


def test_wrong_password_is_a_server_error_without_the_password(emu: tuple[Emulator, str]) -> None:
    _, url = emu
    with pytest.raises(TaosError, match="Authentication failure") as exc:
        open_connection(parse_dsn(url.replace("taosdata", "wr0ngpass") + "/"))
    assert "wr0ngpass" not in str(exc.value)


def test_unknown_sql_is_the_servers_error(emu: tuple[Emulator, str]) -> None:
    _, url = emu
    with open_connection(parse_dsn(url + "/")) as conn, pytest.raises(TaosError, match="syntax error"):
        conn.query("SELEKT 1")


def test_sync_database_over_rest_copies_tables_tags_and_rows(emu: tuple[Emulator, str]) -> None:
    e, url = emu
    s = tdetl.run(f"{url}/src", f"{url}/dst?assert&max-sql-length=2048", jobs=2)
    assert s.rows_written == 40 + 41 + 42 + 2
    assert _content(e.dbs["dst"]) == _content(e.dbs["src"])
    assert e.dbs["dst"].stables["meters"] == METERS
    inserts = [sql for _, sql in e.statements if sql.startswith("INSERT")]
    assert inserts and max(len(sql.encode()) for sql in inserts) <= 2048
    assert any(sql.count("VALUES") > 1 for sql in inserts), "tables are packed into shared statements"


def test_backup_keeps_database_options_and_restores_equal(emu: tuple[Emulator, str], tmp_path: Path) -> None:
    e, url = emu
    res = run_cli("run", "-f", f"{url}/src", "-t", f"local:{tmp_path / 'bk'}", "-qq")
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    db = next(d for d in manifest["databases"] if d["name"] == "src")
    assert db["precision"] == "ms"
    if not e.v2:
        assert db["options"]["keep"] == "3650d,3650d,3650d" and db["options"]["cachemodel"] == "none"
    res = run_cli("run", "-f", f"local:{tmp_path / 'bk'}", "-t", f"{url}/restored?assert", "-qq")
    assert res.returncode == 0, res.stderr
    assert _content(e.dbs["restored"]) == _content(e.dbs["src"])
    if not e.v2:
        create = next(sql for _, sql in e.statements if sql.startswith("CREATE DATABASE IF NOT EXISTS `restored`"))
        assert "KEEP 3650d,3650d,3650d" in create and "CACHEMODEL 'none'" in create and "REPLICA" not in create


def test_tables_start_end_and_select_from_stable(emu: tuple[Emulator, str]) -> None:
    e, url = emu
    start, end = "2023-11-14T22:13:30Z", "2023-11-15T06:13:40+08:00"  # T0 + 10 s .. T0 + 20 s
    tdetl.run(f"{url}/src?tables=meters.d1,notes&start={start}&end={end}", f"{url}/part?assert")
    got = _content(e.dbs["part"])
    assert set(got) == {"d1", "notes"}
    assert [r[0] for r in got["d1"][2]] == [T0 + k * 1000 for k in range(10, 20)]
    assert got["notes"][2] == []
    if not e.v2:
        tdetl.run(f"{url}/src?select-from-stable&tables=meters.d0,meters.d2", f"{url}/viast?assert")
        got = _content(e.dbs["viast"])
        assert got == {k: v for k, v in _content(e.dbs["src"]).items() if k in ("d0", "d2")}
        assert any("WHERE tbname IN ('d0', 'd2')" in sql for _, sql in e.statements)


@pytest.mark.parametrize("params,match", [
    ("mode=sometimes", "taos parameter mode='sometimes' is not valid: expected history|realtime|all"),
    ("start=2024-01-01", "needs a zone"),
    ("start=yesterday", "'yesterday' is not a time like 2023-06-01T00:00:00+08:00"),
    ("start=2024-01-02T00:00:00Z&end=2024-01-01T00:00:00Z", "is not after start"),
    ("select-from-stable&tables=d0", "take the form {stable}.{table}"),
    ("stables=nosuch", "super table 'nosuch' is not in database 'src'"),
    ("tables=meters.nosuch", "table 'meters.nosuch' is not in database 'src'"),
])
def test_bad_source_parameters_are_one_line(emu3: tuple[Emulator, str], tmp_path: Path, params: str,
                                            match: str) -> None:
    _, url = emu3
    res = run_cli("run", "-f", f"{url}/src?{params}", "-t", f"local:{tmp_path / 'x'}")
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert match in res.stderr and "taosdata" not in res.stderr
    assert not (tmp_path / "x" / "manifest.json").exists()


def test_realtime_picks_up_rows_and_tables_that_arrive_while_running(emu3: tuple[Emulator, str]) -> None:
    e, url = emu3
    import threading
    import time
    from datetime import datetime, timezone

    now = int(time.time() * 1000)
    src = e.dbs["src"]
    src.tables["d0"].rows[now - 60_000] = (now - 60_000, 1.0, 1, 1.0)  # inside restro: picked up
    end = datetime.fromtimestamp(now / 1000 + 2.5, timezone.utc).isoformat()

    def produce() -> None:
        for k in range(1, 5):
            time.sleep(0.3)
            with e.lock:
                ts = int(time.time() * 1000)
                src.tables["d1"].rows[ts] = (ts, float(k), k, 0.5)
                t = src.tables.setdefault("late", Table("meters", {"groupid": 9, "location": "new"}))
                t.rows[ts] = (ts, float(-k), -k, 0.5)

    worker = threading.Thread(target=produce)
    worker.start()
    s = tdetl.run(f"{url}/src?mode=realtime&interval=100ms&excursion=0s&restro=2m&end={end}", f"{url}/rt?assert")
    worker.join()
    got = _content(e.dbs["rt"])
    assert s.rows_written == 1 + 4 + 4
    assert [r[2] for r in got["d1"][2]] == [1, 2, 3, 4]
    assert got["late"][1] == {"groupid": 9, "location": "new"} and [r[2] for r in got["late"][2]] == [-1, -2, -3, -4]
    assert [r[0] for r in got["d0"][2]] == [now - 60_000]
