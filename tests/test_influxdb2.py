"""The influxdb source, version 2.x: Flux through influxdb-client against an in-test server that
answers with annotated CSV as InfluxDB 2 documents it (no 2.x server installs here)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

import tdetl
from tdetl.drivers.influxdb.flux import annotated_pieces
from tdetl.errors import DsnError, SourceError

from .conftest import Background, run_cli
from .fakes.influx2_server import Influx2Server, U, annotated

T0 = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z
BEGIN = "2023-11-14T22:13:00Z"
ORG, TOKEN = "3233855dc7e37d8d", "OZ2sB6Ie6qcKc-YAmcH=="


@pytest.fixture
def influx2() -> Iterator[Influx2Server]:
    with Influx2Server(ORG, TOKEN) as s:
        yield s


def _url(s: Influx2Server, **params: str) -> str:
    base = {"version": "2.7", "orgId": ORG, "token": TOKEN, "bucket": "b1", "beginTime": BEGIN}
    q = "&".join(f"{k}={v}" for k, v in {**base, **params}.items())
    return f"influxdb+http://127.0.0.1:{s.port}/?{q}"


def _load(s: Influx2Server, n: int) -> list[tuple[Any, ...]]:
    """Two measurements; one series lacks a field (a second schema block); strings with quotes,
    commas, line breaks and a leading '#'. Returns the plant rows as they must read back."""
    b = s.bucket("b1")
    rows = []
    for i in range(n):
        ts = T0 + i * 7 * 10**9 + i  # odd nanoseconds survive
        line, sensor = f"l{i % 2}", ("temp", "press")[i % 3 == 0]
        status = f'run "{i}",\n#{i}' if i % 4 == 0 else f"ok {i}"
        fields: dict[str, Any] = {"value": i * 0.5, "count": i - 50, "big": U(2**63 + i), "ok": i % 2 == 0,
                                  "status": status}
        if sensor == "press":
            del fields["big"]
        b.write("plant", {"line": line, "sensor": sensor}, fields, ts)
        rows.append((ts, line, sensor, i * 0.5, i - 50, fields.get("big"), i % 2 == 0, status))
        b.write("weather", {"city": "sf"}, {"temp": 20.5 + i % 5}, ts)
    return rows


def _rows(path: Path, sql: str) -> list[Any]:
    with duckdb.connect(str(path)) as con:
        return con.execute(sql).fetchall()


def test_points_come_back_equal_across_windows(influx2: Influx2Server, tmp_path: Path) -> None:
    want = _load(influx2, 120)  # 7 s apart: 15 one-minute windows
    out = tmp_path / "i.duckdb"
    s = tdetl.run(_url(influx2, endTime="2023-11-14T22:30:00Z", readWindow="M"), f"duckdb:{out}", jobs=2)
    assert s.rows_written == 240
    got = _rows(out, "SELECT epoch_ns(ts), line, sensor, value, count, big, ok, status FROM plant ORDER BY ts")
    assert got == want
    types = dict(_rows(out, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name='plant'"))
    assert [types[c] for c in ("value", "count", "big", "ok", "status")] == [
        "DOUBLE", "BIGINT", "UBIGINT", "BOOLEAN", "VARCHAR"]
    names = {r[0]: r[1:] for r in _rows(out, "SELECT DISTINCT tbname, line, sensor FROM plant")}
    assert len(names) == 4  # named as the 1.x reader names them: the same series, the same table
    for name, (line, sensor) in names.items():
        assert name == "t_" + hashlib.md5(f"plant,line={line},sensor={sensor}".encode()).hexdigest()[:16]
    assert _rows(out, "SELECT count(*), min(temp), max(temp) FROM weather") == [(120, 20.5, 24.5)]
    windows = [q for q in influx2.queries if "pivot(" in q and '"plant"' in q]
    assert len(windows) == 17  # one Flux query per minute from 22:13 to 22:30: none reads it whole


def test_measurements_end_time_and_name_template(influx2: Influx2Server, tmp_path: Path) -> None:
    want = _load(influx2, 60)
    out = tmp_path / "m.duckdb"
    end_ns = T0 + 200 * 10**9
    tdetl.run(_url(influx2, measurements="plant", endTime="2023-11-14T22:16:40%2B00:00", readWindow="H",
                   tbname="{sensor}_{line}"), f"duckdb:{out}")
    assert _rows(out, "SELECT epoch_ns(ts), line, sensor FROM plant ORDER BY ts") == [
        r[:3] for r in want if r[0] < end_ns]
    assert {r[0] for r in _rows(out, "SELECT tbname FROM plant")} == {"temp_l0", "temp_l1", "press_l0", "press_l1"}
    with duckdb.connect(str(out)) as con:
        assert "weather" not in {r[0] for r in con.execute("SHOW TABLES").fetchall()}


def test_without_end_time_new_points_are_picked_up(influx2: Influx2Server, tmp_path: Path) -> None:
    now = time.time_ns()
    b = influx2.bucket("b1")
    for i in range(5):
        b.write("live", {"dev": "a"}, {"v": float(i)}, now - (10 - i) * 10**8)
    out = tmp_path / "live.duckdb"
    begin = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now / 1e9 - 5))
    run = Background(_url(influx2, beginTime=begin, readWindow="1s", timeout="3s"), f"duckdb:{out}")
    time.sleep(1.5)
    later = time.time_ns()
    for i in range(5, 9):
        b.write("live", {"dev": "a"}, {"v": float(i)}, later + i * 10**6)
    run.join(60)
    assert [r[0] for r in _rows(out, "SELECT v FROM live ORDER BY ts")] == [float(i) for i in range(9)]


def test_field_typed_differently_in_two_series(influx2: Influx2Server, tmp_path: Path) -> None:
    b = influx2.bucket("b1")
    b.write("mix", {"k": "a"}, {"f": 1.5}, T0)
    b.write("mix", {"k": "b"}, {"f": "text"}, T0 + 10**9)
    url = _url(influx2, endTime="2023-11-15T00:00:00Z", readWindow="D")
    with pytest.raises(SourceError, match=r"measurement 'mix' field 'f' is (float|string) in some shards and"):
        tdetl.run(url, f"duckdb:{tmp_path / 'a.duckdb'}")
    out = tmp_path / "b.duckdb"
    tdetl.run(url + "&field_conflict=varchar", f"duckdb:{out}")
    assert _rows(out, "SELECT f FROM mix ORDER BY ts") == [("1.5",), ("text",)]


def test_server_errors_are_one_line_without_the_token(influx2: Influx2Server, tmp_path: Path) -> None:
    _load(influx2, 10)
    cases = [
        (_url(influx2).replace(TOKEN, "wrong-t0ken"), "HTTP 401: unauthorized access", "wrong-t0ken"),
        (_url(influx2, orgId="0000"), 'organization name "0000" not found', TOKEN),
        (_url(influx2, bucket="nosuch"), 'could not find bucket "nosuch"', TOKEN),
        (_url(influx2).replace(f":{influx2.port}/", ":9/"), "cannot reach InfluxDB at http://127.0.0.1:9", TOKEN),
    ]
    for url, message, secret in cases:
        res = run_cli("run", "-f", url + "&endTime=2023-11-15T00:00:00Z", "-t", f"duckdb:{tmp_path / 'x.duckdb'}")
        assert res.returncode == 1, res.stderr
        assert message in res.stderr and secret not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_an_error_table_mid_stream_fails_the_run(influx2: Influx2Server, tmp_path: Path) -> None:
    _load(influx2, 40)
    influx2.fail_after_first_table = True
    with pytest.raises(SourceError, match="InfluxDB: panic: runtime error: stream interrupted"):
        tdetl.run(_url(influx2, measurements="plant", endTime="2023-11-15T00:00:00Z", readWindow="D"),
                  f"duckdb:{tmp_path / 'e.duckdb'}")


@pytest.mark.parametrize("params,match", [
    ({"version": "3.0"}, "version='3.0' must be 1.x or 2.x"),
    ({"token": ""}, "token is required for InfluxDB 2.x"),
    ({"orgId": ""}, "orgId is required for InfluxDB 2.x"),
    ({"bucket": ""}, "bucket is required"),
    ({"beginTime": ""}, "beginTime is required"),
    ({"readWindow": "fortnight"}, "readWindow"),
])
def test_bad_params_are_one_line(influx2: Influx2Server, params: dict[str, str], match: str) -> None:
    with pytest.raises(DsnError, match=match) as e:
        tdetl.run(_url(influx2, **params), "duckdb:/tmp/never.duckdb")
    assert "\n" not in str(e.value) and TOKEN not in str(e.value)


def test_annotated_csv_pieces_do_not_depend_on_how_the_stream_is_cut() -> None:
    """Chunks of any size and pieces cut inside long tables parse to the same rows, quoted line
    breaks and a quoted '#' at a line start included."""
    cols = [("_time", "dateTime:RFC3339", False), ("k", "string", True), ("v", "double", False),
            ("s", "string", False), ("n", "unsignedLong", False)]
    rows = [[f"2023-11-14T22:13:20.{i:09d}Z", f"k{i // 7}", i / 3 if i % 5 else None,
             f'a,"b"\n#{i}\r\n' if i % 3 == 0 else f"t{i}", 2**64 - 1 - i] for i in range(60)]
    other = [("_value", "long", False)]
    stream = (annotated(cols, rows, {}, group_of=lambda r: r[1]) + "\r\n"
              + annotated(other, [[7], [8]], {})).encode()

    def flat(pieces: Any) -> list[dict[str, Any]]:
        out = []
        for p in pieces:
            t = p.data
            if "_time" in t.column_names:
                t = t.set_column(t.column_names.index("_time"), "_time", t["_time"].cast(pa.int64()))
            out.extend(t.to_pylist())
        return out

    whole = flat(annotated_pieces([stream], "t"))
    assert len(whole) == 62
    assert [r["s"] for r in whole[:4]] == ['a,"b"\n#0\r\n', "t1", "t2", 'a,"b"\n#3\r\n']
    assert whole[1]["_time"] == T0 + 1 and whole[5]["v"] is None
    assert whole[59]["n"] == 2**64 - 60 and whole[61]["_value"] == 8
    for size, piece in [(1, 64), (7, 150), (997, 300), (len(stream), 1 << 20)]:
        chunks = (stream[i:i + size] for i in range(0, len(stream), size))
        pieces = list(annotated_pieces(chunks, "t", piece_bytes=piece))
        assert flat(pieces) == whole, (size, piece)
        if piece < 1000:
            assert len(pieces) > 3  # the long table really was cut
    first = next(iter(annotated_pieces([stream], "t")))
    assert first.data.schema.field("n").type == pa.uint64() and first.group == {"k"}
    assert first.data.column("table").to_pylist()[:8] == [0] * 7 + [1]
