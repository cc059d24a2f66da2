"""The opentsdb source against an in-test OpenTSDB HTTP API on an in-memory dataset (no OpenTSDB
server installs here): windowing, resume, mapping, polling and errors are really exercised."""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

import tdetl
from tdetl.errors import DsnError, SourceError

from .conftest import Background, run_cli
from .fakes.opentsdb_server import OpenTSDBServer

T0 = 1_700_000_000_000  # ms, 2023-11-14T22:13:20Z
BEGIN = "2023-11-14T22:13:00Z"
END = "2023-11-14T22:30:00Z"


@pytest.fixture
def tsdb() -> Iterator[OpenTSDBServer]:
    with OpenTSDBServer() as s:
        yield s


def _url(s: OpenTSDBServer, **params: str) -> str:
    q = "&".join(f"{k}={v}" for k, v in {"beginTime": BEGIN, **params}.items())
    return f"opentsdb+http://127.0.0.1:{s.port}/?{q}"


def _load(s: OpenTSDBServer, n: int) -> dict[str, list[tuple[Any, ...]]]:
    """Points 7.003 s apart (odd milliseconds) in two metrics; what each must read back as."""
    want: dict[str, list[tuple[Any, ...]]] = {"sys.cpu.user": [], "plant.temp": []}
    for i in range(n):
        ms = T0 + i * 7003
        host = f"web{i % 3}"
        s.put("sys.cpu.user", ms, i if i % 2 else i + 0.25, host=host, dc="lga")
        want["sys.cpu.user"].append((ms, "lga", host, float(i if i % 2 else i + 0.25)))
        s.put("plant.temp", ms, 20 + i % 7 * 0.5, line=str(i % 2))
        want["plant.temp"].append((ms, str(i % 2), 20 + i % 7 * 0.5))
    return want


def _rows(path: Path, sql: str) -> list[Any]:
    with duckdb.connect(str(path)) as con:
        return con.execute(sql).fetchall()


def test_all_metrics_come_back_equal_across_windows(tsdb: OpenTSDBServer, tmp_path: Path) -> None:
    want = _load(tsdb, 120)
    out = tmp_path / "t.duckdb"
    s = tdetl.run(_url(tsdb, endTime=END, readWindow="M"), f"duckdb:{out}", jobs=2)  # metrics= empty: all
    assert s.rows_written == 240
    assert _rows(out, 'SELECT epoch_ms(ts), dc, host, value FROM sys_cpu_user ORDER BY ts') == want["sys.cpu.user"]
    assert _rows(out, 'SELECT epoch_ms(ts), line, value FROM plant_temp ORDER BY ts') == want["plant.temp"]
    names = _rows(out, 'SELECT DISTINCT tbname, dc, host FROM sys_cpu_user ORDER BY host')
    assert [n for n, _, _ in names] == [
        "t_" + hashlib.md5(f"sys.cpu.user,dc={dc},host={host}".encode()).hexdigest()[:16] for _, dc, host in names]
    assert len(names) == 3
    windows = sorted((q["start"], q["end"]) for q in tsdb.queries if q["queries"][0]["metric"] == "plant.temp")
    assert len(windows) == 17  # 22:13 .. 22:30, one minute each, half-open: end is the next start - 1 ms
    assert all(b[0] == a[1] + 1 and b[0] - a[0] == 60_000 for a, b in itertools.pairwise(windows))
    assert all(q["queries"][0]["aggregator"] == "none" and q["msResolution"] for q in tsdb.queries)


def test_metrics_end_time_and_name_template(tsdb: OpenTSDBServer, tmp_path: Path) -> None:
    want = _load(tsdb, 60)
    out = tmp_path / "m.duckdb"
    end_ms = T0 + 200_000
    tdetl.run(_url(tsdb, metrics="sys.cpu.user", endTime="2023-11-14T22:16:40%2B00:00", readWindow="H",
                   tbname="cpu_{host}"), f"duckdb:{out}")
    assert _rows(out, 'SELECT epoch_ms(ts), dc, host, value FROM sys_cpu_user ORDER BY ts') == [
        r for r in want["sys.cpu.user"] if r[0] < end_ms]
    assert {r[0] for r in _rows(out, 'SELECT tbname FROM sys_cpu_user')} == {"cpu_web0", "cpu_web1", "cpu_web2"}
    with duckdb.connect(str(out)) as con:
        assert "plant_temp" not in {r[0] for r in con.execute("SHOW TABLES").fetchall()}


def test_a_tag_first_seen_later_grows_the_super_table(tsdb: OpenTSDBServer, tmp_path: Path) -> None:
    tsdb.put("m", T0, 1.0, a="x")
    tsdb.put("m", T0 + 120_000, 2.0, a="x", b="late")
    out = tmp_path / "g.duckdb"
    tdetl.run(_url(tsdb, endTime=END), f"duckdb:{out}")
    assert _rows(out, "SELECT a, b, value FROM m ORDER BY ts") == [("x", None, 1.0), ("x", "late", 2.0)]


def test_a_failed_run_resumes_after_the_last_finished_window(tsdb: OpenTSDBServer, tmp_path: Path) -> None:
    want = _load(tsdb, 120)
    backup = tmp_path / "bk"
    tsdb.fail_at = 6  # the 6th /api/query answers HTTP 500
    url = _url(tsdb, metrics="plant.temp", endTime=END, readWindow="M")
    with pytest.raises(SourceError, match="HTTP 500"):
        tdetl.run(url, f"local:{backup}?file_rows=1")
    tsdb.fail_at = None
    before = len(tsdb.queries)
    tdetl.run(url, f"local:{backup}?file_rows=1")
    starts = [q["start"] for q in tsdb.queries[before:]]
    assert starts[0] == T0 - 20_000 + 5 * 60_000  # five windows were done: the rerun starts at the sixth
    out = tmp_path / "r.duckdb"
    tdetl.run(f"local:{backup}", f"duckdb:{out}")
    assert _rows(out, 'SELECT epoch_ms(ts), line, value FROM plant_temp ORDER BY ts') == want["plant.temp"]


def test_without_end_time_new_points_are_picked_up(tsdb: OpenTSDBServer, tmp_path: Path) -> None:
    now = time.time_ns() // 1_000_000
    for i in range(5):
        tsdb.put("live", now - (10 - i) * 100, float(i), dev="a")
    out = tmp_path / "live.duckdb"
    begin = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now / 1000 - 5))
    run = Background(_url(tsdb, beginTime=begin, readWindow="1s", timeout="3s"), f"duckdb:{out}")
    time.sleep(1.5)
    later = time.time_ns() // 1_000_000
    for i in range(5, 9):
        tsdb.put("live", later + i, float(i), dev="a")
    run.join(60)
    assert [r[0] for r in _rows(out, "SELECT value FROM live ORDER BY ts")] == [float(i) for i in range(9)]


def test_server_errors_are_one_line(tsdb: OpenTSDBServer, tmp_path: Path) -> None:
    _load(tsdb, 5)
    for url, message in [
        (_url(tsdb, metrics="nosuch", endTime=END), "OpenTSDB refused metric 'nosuch': HTTP 400: No such name for"
                                                    " 'metrics': 'nosuch'"),
        (_url(tsdb, endTime=END).replace(f":{tsdb.port}/", ":9/"), "cannot reach OpenTSDB at http://127.0.0.1:9"),
    ]:
        res = run_cli("run", "-f", url, "-t", f"duckdb:{tmp_path / 'x.duckdb'}")
        assert res.returncode == 1 and message in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


@pytest.mark.parametrize("params,match", [
    ({"beginTime": ""}, "beginTime is required"),
    ({"beginTime": "2023-06-01"}, "needs a zone"),
    ({"endTime": "2023-01-01T00:00:00Z"}, "endTime must be after beginTime"),
    ({"readWindow": "W"}, "readWindow='W' must be D, H, M or a duration"),
    ({"metric": "a"}, "metric"),
])
def test_bad_params_are_one_line(tsdb: OpenTSDBServer, params: dict[str, str], match: str) -> None:
    with pytest.raises(DsnError, match=match) as e:
        tdetl.run(_url(tsdb, **params), "duckdb:/tmp/never.duckdb")
    assert "\n" not in str(e.value)
