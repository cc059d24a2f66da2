"""The influxdb source (1.x) against a real influxd 1.6 on loopback: points written with the line
protocol come back equal through tdetl, across window boundaries, and new points are picked up
when endTime is absent."""

from __future__ import annotations

import hashlib
import itertools
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest

import tdetl
from tdetl.errors import DsnError, SourceError

from .conftest import Background, run_cli
from .services import Influxd

T0 = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z
BEGIN = "2023-11-14T22:13:00Z"


def _db(influxd: Influxd) -> str:
    db = f"d{uuid.uuid4().hex[:8]}"
    influxd.query(f"CREATE DATABASE {db}")
    return db


def _points(n: int, start: int = T0, step: int = 7 * 10**9) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Line protocol for two measurements and what each row must read back as."""
    lines, rows = [], []
    for i in range(n):
        ts = start + i * step
        line, sensor = f"l{i % 2}", ("temp", "press")[i % 3 == 0]
        status = f'"run \\"{i}\\""'
        lines.append(f"plant,line={line},sensor={sensor} value={i * 0.5},count={i}i,ok={str(i % 2 == 0).lower()},"
                     f"status={status} {ts}")
        rows.append((ts, line, sensor, i * 0.5, i, i % 2 == 0, f'run "{i}"'))
        lines.append(f"weather,city=sf temp={20 + i % 5}.5 {ts}")
    return lines, rows


def _url(influxd: Influxd, db: str, **params: str) -> str:
    q = "&".join(f"{k}={v}" for k, v in {"version": "1.7", "bucket": db, "beginTime": BEGIN, **params}.items())
    return f"influxdb+http://127.0.0.1:{influxd.port}/?{q}"


def _rows(path: Path, sql: str) -> list[Any]:
    with duckdb.connect(str(path)) as con:
        return con.execute(sql).fetchall()


def test_a_cluster_run_cuts_a_measurement_into_spans_of_whole_windows() -> None:
    from tdetl.drivers.common.series import TimeRange

    cfg = {"beginTime": 0, "endTime": 15 * 60 * 10**9 + 5, "readWindow": "M", "timeout": None}
    r = TimeRange(cfg, "here")
    assert r.partitions(["m", "a@b"], cut=False) == ["m", "a@b"]
    parts = r.partitions(["m", "a@b"], cut=True)
    assert len(parts) == 16
    spans = [r.span_of(p) for p in parts[:8]]
    assert all(name == "m" for name, _ in spans)
    bounds = [s for _, s in spans]
    assert bounds[0][0] == 0 and bounds[-1][1] == cfg["endTime"]
    assert all(a[1] == b[0] and (a[1] - a[0]) % (60 * 10**9) == 0 for a, b in itertools.pairwise(bounds))
    assert r.span_of(parts[8])[0] == "a@b" and r.span_of("a@b") == ("a@b", None)
    windows = [w for p in parts[:8] for w in r.windows(None, r.span_of(p)[1])]
    assert windows == list(r.windows(None))  # the spans' windows are the whole range's


def test_points_come_back_equal_across_windows(influxd: Influxd, tmp_path: Path) -> None:
    db = _db(influxd)
    lines, want = _points(120)  # 120 points 7 s apart: 15 one-minute windows
    influxd.write(db, lines)
    out = tmp_path / "i.duckdb"
    s = tdetl.run(_url(influxd, db, endTime="2023-11-14T22:30:00Z", readWindow="M"), f"duckdb:{out}", jobs=2)
    assert s.rows_written == 240
    got = _rows(out, "SELECT epoch_ns(ts), line, sensor, value, count, ok, status FROM plant ORDER BY ts")
    assert got == want
    types = dict(_rows(out, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name='plant'"))
    assert (types["value"], types["count"], types["ok"], types["status"]) == ("DOUBLE", "BIGINT", "BOOLEAN", "VARCHAR")
    names = {r[0]: r[1:] for r in _rows(out, "SELECT DISTINCT tbname, line, sensor FROM plant")}
    assert len(names) == 4  # one child table per series (tag set), named by a stable hash of the key
    for name, (line, sensor) in names.items():
        assert name == "t_" + hashlib.md5(f"plant,line={line},sensor={sensor}".encode()).hexdigest()[:16]
    assert _rows(out, "SELECT count(*), min(temp), max(temp) FROM weather") == [(120, 20.5, 24.5)]


def test_measurements_end_time_and_name_template(influxd: Influxd, tmp_path: Path) -> None:
    db = _db(influxd)
    lines, want = _points(60)
    influxd.write(db, lines)
    out = tmp_path / "m.duckdb"
    end_ns = T0 + 200 * 10**9  # endTime excludes the points at or after it
    tdetl.run(_url(influxd, db, measurements="plant", endTime="2023-11-14T22:16:40%2B00:00", readWindow="H",
                   tbname="{sensor}_{line}"), f"duckdb:{out}")
    assert _rows(out, "SELECT epoch_ns(ts), line, sensor FROM plant ORDER BY ts") == [
        r[:3] for r in want if r[0] < end_ns]
    assert {r[0] for r in _rows(out, "SELECT tbname FROM plant")} == {"temp_l0", "temp_l1", "press_l0", "press_l1"}
    with duckdb.connect(str(out)) as con:
        assert "weather" not in {r[0] for r in con.execute("SHOW TABLES").fetchall()}


def test_without_end_time_new_points_are_picked_up(influxd: Influxd, tmp_path: Path) -> None:
    db = _db(influxd)
    now = time.time_ns()
    influxd.write(db, [f"live,dev=a v={i} {now - (10 - i) * 10**8}" for i in range(5)])
    out = tmp_path / "live.duckdb"
    begin = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now / 1e9 - 5))
    run = Background(_url(influxd, db, beginTime=begin, readWindow="1s", timeout="3s"), f"duckdb:{out}")
    time.sleep(1.5)
    later = time.time_ns()
    influxd.write(db, [f"live,dev=a v={i} {later + i * 10**6}" for i in range(5, 9)])
    run.join(60)
    assert [r[0] for r in _rows(out, "SELECT v FROM live ORDER BY ts")] == [float(i) for i in range(9)]


def test_field_type_conflict_across_shards_is_named(influxd: Influxd, tmp_path: Path) -> None:
    db = _db(influxd)
    week = 7 * 86_400 * 10**9  # shard groups are 7 days: a second shard may type the field anew
    influxd.write(db, [f"mix,k=a f=1.5 {T0}"])
    influxd.write(db, [f'mix,k=a f="text" {T0 + 2 * week}'])
    url = _url(influxd, db, endTime="2023-12-31T00:00:00Z", readWindow="D")
    with pytest.raises(SourceError, match=r"measurement 'mix' field 'f' is float in some shards and string"):
        tdetl.run(url, f"duckdb:{tmp_path / 'a.duckdb'}")
    out = tmp_path / "b.duckdb"
    tdetl.run(url + "&field_conflict=varchar", f"duckdb:{out}")
    assert _rows(out, "SELECT f FROM mix ORDER BY ts") == [("1.5",), ("text",)]


@pytest.mark.parametrize("params,match", [
    ({"version": ""}, "version is required"),
    ({"bucket": ""}, "bucket is required"),
    ({"beginTime": "yesterday"}, "'yesterday' is not a time like 2023-06-01T00:00:00"),
    ({"beginTime": "2023-06-01T00:00:00"}, "needs a zone"),
    ({"endTime": "2023-01-01T00:00:00Z"}, "endTime must be after beginTime"),
    ({"readWindow": "W"}, "readWindow"),
    ({"field_conflict": "drop"}, "field_conflict"),
    ({"colour": "red"}, "colour"),
])
def test_bad_params_are_one_line(influxd: Influxd, params: dict[str, str], match: str) -> None:
    with pytest.raises(DsnError, match=match) as e:
        tdetl.run(_url(influxd, "x", **params), "duckdb:/tmp/never.duckdb")
    assert "\n" not in str(e.value)


def test_server_errors_and_password_stay_hidden(influxd: Influxd) -> None:
    res = run_cli("run", "-f", f"influxdb+http://127.0.0.1:{influxd.port}/?version=1.7&username=u&password=s3cret"
                  f"&bucket=nosuchdb&beginTime={BEGIN}&endTime=2023-11-15T00:00:00Z", "-t", "duckdb:/tmp/never.duckdb")
    assert res.returncode == 1 and "database not found: nosuchdb" in res.stderr and "s3cret" not in res.stderr
    res = run_cli("run", "-f", f"influxdb+http://127.0.0.1:9/?version=1.7&password=s3cret&bucket=x&beginTime={BEGIN}",
                  "-t", "duckdb:/tmp/never.duckdb")
    assert res.returncode == 1 and "cannot reach InfluxDB" in res.stderr and "s3cret" not in res.stderr
