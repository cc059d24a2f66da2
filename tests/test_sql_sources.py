"""``postgres://`` and ``mysql://`` (tdetl/drivers/sql) against real servers started by the tests
(tests/sql_servers.py): every type lands exact in TDengine (read back by taospy), windows are
half-open so a row on a boundary lands once, the subtables query splits partitions (values that
need escaping included), a realtime run picks up rows inserted after it started, a killed run
resumes, TLS is used when asked, and bad input fails in one line before anything is written."""

from __future__ import annotations

import json
import signal
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tdetl
from tdetl.errors import ConfigError, DsnError, SourceError, TdetlError

from .sql_servers import MariaDB, Postgres
from .taos_helpers import ANY, NATIVE, pytestmark, scalar, taospy_rows  # noqa: F401
from .test_taos_errors import _cli

WINDOW = "ts >= '${start}' AND ts < '${end}'"
DAY = {"beginTime": "2023-12-31T00:00:00Z", "endTime": "2024-01-03T00:00:00Z"}


def _pg_table(pg: Postgres, name: str, ddl: str, *rows: str) -> None:
    pg.sql(f"DROP TABLE IF EXISTS {name}", f"CREATE TABLE {name} ({ddl})",
           *(f"INSERT INTO {name} VALUES {r}" for r in rows))


def _ns(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1_000_000)  # microseconds: the us database


# -- every type ------------------------------------------------------------------------------------

def test_postgres_types_land_exact(postgres: Postgres, scratch: Any) -> None:
    _pg_table(postgres, "ty", "ts timestamptz, tsn timestamp, d date, b bool, i2 smallint, i4 int, i8 bigint,"
              " r real, f float8, n numeric(12,3), nb numeric, t text, vc varchar(10), by bytea, j json, jb jsonb,"
              " u uuid",
              "('2024-01-01 00:00:00.123456+08', '2024-01-01 00:00:00.5', '2024-01-02', true, -32768, 2147483647,"
              " -9223372036854775808, 1.5, -2.25, -123456789.123, 1.23456789012345678901234567890, 'héllo ✓', 'abc',"
              " '\\xdeadbeef00', '{\"a\":1}', '{\"b\": [2]}', 'a0ddb96a-ddaf-46a5-92cd-55e0ae880838')",
              "('2024-01-01 00:00:01+00', null, null, null, null, null, null, null, null, null, null, null, null,"
              " null, null, null, null)")
    db = scratch("tdetl_pg")
    s = tdetl.run(postgres.dsn(sql=f"select * from ty where {WINDOW}", table="ty", timezone="Asia/Shanghai", **DAY),
                  f"{ANY}/{db}?assert")
    assert (s.rows_read, s.rows_written) == (2, 2)
    got = taospy_rows(db, "SELECT CAST(ts AS BIGINT), CAST(tsn AS BIGINT), CAST(d AS BIGINT), b, i2, i4, i8, r, f,"
                          " CAST(n AS VARCHAR(20)), nb, t, vc, `by`, j, jb, u FROM ty ORDER BY ts")
    assert got[0] == (_ns("2023-12-31T16:00:00.123456+00:00"), _ns("2023-12-31T16:00:00.5+00:00"),
                      _ns("2024-01-01T16:00:00+00:00"), True, -32768, 2147483647, -9223372036854775808, 1.5, -2.25,
                      "-123456789.123", "1.23456789012345678901234567890", "héllo ✓", "abc", b"\xde\xad\xbe\xef\x00",
                      '{"a":1}', '{"b": [2]}', "a0ddb96a-ddaf-46a5-92cd-55e0ae880838")
    assert got[1] == (_ns("2024-01-01T00:00:01+00:00"), *([None] * 16))
    types = {r[0]: r[1] for r in taospy_rows(db, "DESCRIBE ty")}
    assert types["n"] == "DECIMAL(12, 3)" and types["nb"] == "VARCHAR" and types["by"] == "VARBINARY", types


def test_mariadb_types_land_exact(mariadb: MariaDB, scratch: Any) -> None:
    mariadb.sql("DROP TABLE IF EXISTS ty",
                "CREATE TABLE ty (ts timestamp(6) NULL, dt datetime(3), d date, b bool, ti tinyint,"
                " tu tinyint unsigned, si smallint, su smallint unsigned, i int, iu int unsigned, bi bigint,"
                " bu bigint unsigned, f float, db double, n decimal(12,3), nb decimal(38,0), nw decimal(40,5),"
                " t text, vc varchar(10), bl blob, vb varbinary(10), j json)",
                "INSERT INTO ty VALUES ('2024-01-01 00:00:00.123456', '2024-01-01 00:00:00.5', '2024-01-02', true,"
                " -128, 255, -32768, 65535, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,"
                " 1.5, -2.25, -123456789.123, 12345678901234567890123456789012345678,"
                " 123456789012345678901234567890.12345, 'héllo ✓', 'abc', x'deadbeef00', x'00ff', '{\"a\":1}')",
                "INSERT INTO ty (ts) VALUES ('2024-01-01 00:00:01')")
    db = scratch("tdetl_my")
    s = tdetl.run(mariadb.dsn(sql="select * from ty where ts >= '${start_no_tz}' and ts < '${end_no_tz}'", table="ty",
                              timezone="+08:00", **DAY), f"{ANY}/{db}?assert")
    assert (s.rows_read, s.rows_written) == (2, 2)
    got = taospy_rows(db, "SELECT CAST(ts AS BIGINT), CAST(dt AS BIGINT), CAST(d AS BIGINT), b, ti, tu, si, su, i, iu,"
                          " bi, bu, f, db, CAST(n AS VARCHAR(20)), CAST(nb AS VARCHAR(50)), nw, t, vc, bl, vb, j"
                          " FROM ty ORDER BY ts")
    assert got[0] == (_ns("2024-01-01T00:00:00.123456+00:00"), _ns("2023-12-31T16:00:00.5+00:00"),
                      _ns("2024-01-01T16:00:00+00:00"), 1, -128, 255, -32768, 65535, -2147483648, 4294967295,
                      -9223372036854775808, 18446744073709551615, 1.5, -2.25, "-123456789.123",
                      "12345678901234567890123456789012345678", "123456789012345678901234567890.12345", "héllo ✓",
                      "abc", b"\xde\xad\xbe\xef\x00", b"\x00\xff", '{"a":1}')
    assert got[1] == (_ns("2024-01-01T00:00:01+00:00"), *([None] * 21))


# -- windows, subtables, realtime, resume ----------------------------------------------------------

def test_a_row_on_a_window_boundary_lands_once_and_verify_agrees(postgres: Postgres, scratch: Any) -> None:
    _pg_table(postgres, "edge", "ts timestamptz primary key, v int",
              "('2024-01-01 00:00:00+00', 1), ('2024-01-01 00:59:59.999999+00', 2), ('2024-01-01 01:00:00+00', 3),"
              " ('2024-01-01 02:00:00+00', 4), ('2024-01-01 03:00:00+00', 5)")
    db = scratch("tdetl_pg")
    src = postgres.dsn(sql=f"select * from edge where {WINDOW}", table="edge", readWindow="1h",
                       beginTime="2024-01-01T00:00:00Z", endTime="2024-01-01T03:00:00Z")
    s = tdetl.run(src, f"{ANY}/{db}?assert")
    assert (s.rows_read, s.rows_written) == (4, 4)  # 03:00 is the end: not read
    assert [r[0] for r in taospy_rows(db, "SELECT v FROM edge ORDER BY ts")] == [1, 2, 3, 4]
    assert tdetl.verify(src, f"{ANY}/{db}")["differences"] == []


MODEL = {"model": {"name": "d_{id}", "using": "meters", "tags": ["id", "name"], "columns": ["ts", "v"]}}


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_the_subtables_query_splits_partitions_escaping_its_values(kind: str, request: pytest.FixtureRequest,
                                                                   scratch: Any) -> None:
    server = request.getfixturevalue(kind)
    names = ["plain", "o'brien", "back\\slash", "quote' OR '1'='1"]
    rows = ", ".join(f"('2024-01-01 00:00:0{k}', {i}, {_literal(n, server)}, {i * 10 + k})"
                     for i, n in enumerate(names) for k in range(3))
    ddl = "ts timestamp(6), id int, name varchar(40), v int"
    if kind == "postgres":
        _pg_table(server, "sub", ddl.replace("timestamp(6)", "timestamp"), rows)
    else:
        server.sql("DROP TABLE IF EXISTS sub", f"CREATE TABLE sub ({ddl})", f"INSERT INTO sub VALUES {rows}")
    db = scratch("tdetl_sub")
    src = server.dsn(sql="select ts, id, name, v from sub where name = '${name}' and ts >= '${start_no_tz}'"
                         " and ts < '${end_no_tz}'", subtables="select distinct name from sub", **DAY)
    s = tdetl.run(src, f"{ANY}/{db}?assert", parser=json.dumps(MODEL), jobs=2,
                  transforms=["rename-super-table:prefix:sql_", "add-tag:site=north"])  # -T applies too
    assert (s.rows_read, s.rows_written, s.partitions_total) == (12, 12, 4)
    got = taospy_rows(db, "SELECT tbname, name, v, site FROM sql_meters ORDER BY tbname, ts")
    assert got == [(f"d_{i}", n, i * 10 + k, "north") for i, n in enumerate(names) for k in range(3)]


def _literal(text: str, server: Postgres | MariaDB) -> str:
    """A SQL string literal (MariaDB reads backslashes as escapes, PostgreSQL does not)."""
    if isinstance(server, MariaDB):
        text = text.replace("\\", "\\\\")
    return "'" + text.replace("'", "''") + "'"


def test_realtime_picks_up_rows_inserted_after_it_started(postgres: Postgres, scratch: Any) -> None:
    _pg_table(postgres, "rt", "ts timestamptz, v int")
    now = datetime.now(timezone.utc)
    postgres.sql(f"INSERT INTO rt VALUES ('{(now - timedelta(seconds=5)).isoformat()}', 0)")
    db = scratch("tdetl_rt")
    src = postgres.dsn(sql=f"select * from rt where {WINDOW}", table="rt", readWindow="1s", delay="1s", timeout="4s",
                       beginTime=(now - timedelta(seconds=10)).isoformat(timespec="seconds"))
    result: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: result.update(s=tdetl.run(src, f"{ANY}/{db}?assert")))
    runner.start()
    for v in range(1, 4):
        time.sleep(0.7)
        postgres.sql(f"INSERT INTO rt VALUES (now(), {v})")
    runner.join(60)
    assert not runner.is_alive()
    assert result["s"].rows_read == 4
    assert [r[0] for r in taospy_rows(db, "SELECT v FROM rt ORDER BY ts")] == [0, 1, 2, 3]


def test_a_killed_run_resumes_from_its_last_window(postgres: Postgres, scratch: Any, tmp_path: Path) -> None:
    postgres.sql("DROP TABLE IF EXISTS big", "CREATE TABLE big (ts timestamptz, v int)",
                 "INSERT INTO big SELECT timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute', i"
                 " FROM generate_series(0, 1439) i")
    db = scratch("tdetl_kill")
    src = postgres.dsn(sql=f"select * from big where {WINDOW}", table="big", readWindow="10m",
                       beginTime="2024-01-01T00:00:00Z", endTime="2024-01-02T00:00:00Z")
    state = tmp_path / "run.state"
    proc = _cli("run", "-f", src, "-t", f"{ANY}/{db}?assert&interval=100ms&buffer-bytes=1", "--state", str(state), "-q")
    end = time.monotonic() + 60
    while time.monotonic() < end and _windows_done(state) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    done = _windows_done(state)
    assert done >= 3
    s = tdetl.run(src, f"{ANY}/{db}", state=str(state))
    assert s.rows_read <= 1440 - done * 10
    assert scalar(ANY, "SELECT COUNT(*) FROM big", db) == 1440
    assert tdetl.verify(src, f"{ANY}/{db}")["differences"] == []


def _windows_done(state: Path) -> int:
    """Windows of the one partition the state file records as durable (its position: a window end)."""
    try:
        checkpoint = json.loads(state.read_text())["checkpoint"]
    except (OSError, ValueError, KeyError):
        return 0
    ends = [v for v in checkpoint.values() if isinstance(v, int)]
    return (max(ends) - _ns("2024-01-01T00:00:00+00:00") * 1000) // (600 * 10**9) if ends else 0


# -- TLS and refusals ------------------------------------------------------------------------------

def test_tls_is_used_when_asked_and_a_wrong_ca_is_refused(postgres: Postgres, scratch: Any, tmp_path: Path) -> None:
    _pg_table(postgres, "tls", "ts timestamptz, v int", "('2024-01-01 00:00:00+00', 1)")
    ssl = "select t.ts, s.ssl::int as v from tls t, pg_stat_ssl s where s.pid = pg_backend_pid() and " + WINDOW
    db = scratch("tdetl_tls")
    tdetl.run(postgres.dsn(sql=ssl, table="tls", sslmode="verify-full", sslrootcert=str(postgres.dir / "ca.crt"),
                           **DAY), f"{ANY}/{db}?assert")
    assert taospy_rows(db, "SELECT v FROM tls") == [(1,)]  # the server saw a TLS connection
    other = tmp_path / "other.crt"
    import subprocess

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=x",
                    "-keyout", str(tmp_path / "k"), "-out", str(other)], check=True, capture_output=True)
    with pytest.raises(SourceError, match="cannot connect") as e:
        tdetl.run(postgres.dsn(sql=ssl, table="tls", sslmode="verify-full", sslrootcert=str(other), **DAY),
                  f"{ANY}/{db}")
    assert "\n" not in str(e.value) and ":pw@" not in str(e.value)


def test_a_table_the_user_cannot_read_fails_in_one_line(postgres: Postgres, mariadb: MariaDB, scratch: Any) -> None:
    _pg_table(postgres, "secret", "ts timestamptz, v int", "('2024-01-01 00:00:00+00', 1)")
    postgres.sql("DROP ROLE IF EXISTS reader", "CREATE ROLE reader LOGIN PASSWORD 'pw'")
    db = scratch("tdetl_deny")
    pg = postgres.dsn(sql=f"select * from secret where {WINDOW}", table="secret", **DAY)
    pg = pg.replace("tdetl:pw", "reader:pw")
    with pytest.raises(SourceError, match="permission denied for table secret") as e:
        tdetl.run(pg, f"{ANY}/{db}?assert")
    mariadb.sql("DROP TABLE IF EXISTS secret", "CREATE TABLE secret (ts datetime, v int)")
    root = mariadb.connect(None, "root", "")
    with root.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS other")
        cur.execute("CREATE TABLE IF NOT EXISTS other.secret (ts datetime, v int)")
    root.close()
    with pytest.raises(SourceError, match="denied") as e2:
        tdetl.run(mariadb.dsn(sql="select * from other.secret where ts >= '${start_no_tz}'", table="secret", **DAY),
                  f"{ANY}/{db}?assert")
    for err in (e.value, e2.value):
        assert "\n" not in str(err) and ":pw@" not in str(err) and len(str(err)) < 1000
    assert scalar(ANY, f"SELECT COUNT(*) FROM information_schema.ins_databases WHERE name = '{db}'") == 0


@pytest.mark.parametrize(("params", "error", "match"), [
    ({"table": "t"}, DsnError, "sql is required"),
    ({"sql": "select * from t where ts >= '${begin}'", "table": "t", **DAY}, DsnError, r"placeholder \$\{begin\}"),
    ({"sql": "select * from t where ts >= '${start}'", "table": "t"}, DsnError, "beginTime is required"),
    ({"sql": "select * from t where ts >= '${start}'", "table": "t", "timezone": "Mars/Base", **DAY}, DsnError,
     "timezone='Mars/Base' is not a time zone"),
    ({"sql": "select * from t where ts >= '${start}'", "table": "t", "readWindow": "soon", **DAY}, DsnError,
     "readWindow='soon'"),
    ({"sql": "select * from t where ts >= '${start}'", "table": "t", "sslmode": "maybe", **DAY}, DsnError,
     "sslmode='maybe' is not valid"),
    ({"sql": "select * from t where ts >= '${start}'", **DAY}, ConfigError, "give table=<name>"),
])
def test_bad_parameters_are_one_line(postgres: Postgres, params: dict[str, str], error: type, match: str) -> None:
    with pytest.raises(error, match=match) as e:
        tdetl.run(postgres.dsn(**params), "local:/nonexistent/never")
    assert "\n" not in str(e.value) and ":pw@" not in str(e.value)


def test_a_query_error_names_the_server_and_the_query(postgres: Postgres, mariadb: MariaDB) -> None:
    for server, text in ((postgres, "relation \"nope\" does not exist"), (mariadb, "doesn't exist")):
        with pytest.raises(SourceError, match=text) as e:
            tdetl.run(server.dsn(sql="select * from nope where ts >= '${start_no_tz}'", table="x", **DAY),
                      "local:/nonexistent/never")
        assert "\n" not in str(e.value) and "select * from nope" in str(e.value)


def test_an_unmappable_column_type_is_named(postgres: Postgres) -> None:
    _pg_table(postgres, "arr", "ts timestamptz, a int[]", "('2024-01-01 00:00:00+00', '{1,2}')")
    with pytest.raises(TdetlError, match="'a'") as e:
        tdetl.run(postgres.dsn(sql=f"select * from arr where {WINDOW}", table="arr", **DAY), "local:/nonexistent/x")
    assert "\n" not in str(e.value)


# -- hostile values --------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=30))
def test_any_subtable_value_stays_inside_its_literal(postgres: Postgres, mariadb: MariaDB, value: str) -> None:
    """Whatever a subtables row holds, the rendered query compares it as one literal: the server
    gives it back unchanged (no value can end the literal and add SQL)."""
    from tdetl.drivers import open_source
    from tdetl.options import Options

    for server in (postgres, mariadb):
        dsn = server.dsn(sql="select '${name}' as v", subtables=f"select {_literal(value, server)} as name", table="x")
        src = open_source(dsn, Options())
        try:
            reader = src.connect()
            try:
                sql = src._render(src.partitions()[0], 0, 0)
                rows = reader.rows(sql)[1]
            finally:
                reader.close()
        finally:
            src.close()
        assert rows == [(value,)]
