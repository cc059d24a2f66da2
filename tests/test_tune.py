"""``tdetl bench`` (tdetl/tune.py) against the bundled server and local backups, and the ``--limit``
sample it is built on: every trial writes the same rows, what it wrote is gone afterwards, and a
request it cannot measure is refused in one line before anything is read."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow.ipc as ipc
import pytest

import tdetl
from tdetl.errors import ConfigError
from tdetl.tune import bench, report

from .conftest import run_cli
from .samples import PARSER, meters
from .taos_helpers import ANY, SERVERS, connect, taospy_rows


def _csv(tmp_path: Path, rows: int, tables: int = 1) -> str:
    meters(rows, tables=tables).write_csv(tmp_path / "m.csv")
    return f"csv:{tmp_path / 'm.csv'}"


def test_limit_writes_the_first_rows_of_the_source_and_no_more(tmp_path: Path) -> None:
    src = _csv(tmp_path, 5_000)
    summary = tdetl.run(src, f"local:{tmp_path / 'bk'}", parser=json.dumps(PARSER), limit=1_234, batch_rows=500)
    assert (summary.rows_read, summary.rows_written) == (1_234, 1_234)
    files = sorted((tmp_path / "bk" / "data").rglob("*.arrow"))
    got = [ipc.open_file(f).read_all() for f in files]
    ts = sorted(v for t in got for v in t.column("ts").cast("int64").to_pylist())
    want = sorted(meters(5_000, tables=1)["ts"].to_list()[:1_234])
    assert ts == want


def test_limit_is_refused_when_not_positive_or_with_a_cluster(tmp_path: Path) -> None:
    out = run_cli("run", "-f", _csv(tmp_path, 10), "-t", f"local:{tmp_path / 'bk'}", "--limit", "0")
    assert out.returncode == 2 and "--limit: 0 is not >= 1" in out.stderr
    with pytest.raises(ConfigError, match="not --cluster"):
        tdetl.run(_csv(tmp_path, 10), f"local:{tmp_path / 'bk'}", parser=json.dumps(PARSER), limit=5, cluster="local")


def test_bench_into_local_tries_each_level_and_leaves_nothing(tmp_path: Path) -> None:
    src = _csv(tmp_path, 30_000, tables=3)
    (tmp_path / "out").mkdir()
    plan = bench(src, f"local:{tmp_path / 'out' / 'bk'}", json.dumps(PARSER), 20_000, {"jobs": [1], "level": [1, 5]})
    assert [t.settings for t in plan.trials] == [{"jobs": 1, "level": 1}, {"jobs": 1, "level": 5}]
    assert [(t.error, t.rows) for t in plan.trials] == [("", 20_000), ("", 20_000)]
    assert all(t.peak_rss_mb > 0 for t in plan.trials)
    assert list((tmp_path / "out").iterdir()) == []  # the scratch directories are removed
    text = report(plan)
    assert "| -j | level | rows/s |" in text and "fastest: -j 1, and level=" in text


@pytest.mark.taos
@pytest.mark.skipif(not SERVERS, reason="no TDengine server")
def test_bench_into_taos_uses_scratch_databases_and_drops_them(tmp_path: Path, scratch: Any) -> None:
    db = scratch("tdetl_tune")
    tdetl.run(_csv(tmp_path, 6_000, tables=3), f"{ANY}/{db}?assert", parser=json.dumps(PARSER))

    def bench_dbs() -> set[str]:
        with connect(ANY) as conn:
            names = conn.query("SELECT name FROM information_schema.ins_databases").table().column(0).to_pylist()
        return {n for n in names if n.startswith("tdetl_bench_")}
    before = bench_dbs()
    out = run_cli("bench", "-f", f"{ANY}/{db}", "-t", f"{ANY}/{db}", "--rows", "4000", "-j", "1,2", "--writers", "1,3")
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 4 and all(re.search(r" \d+\.\d+ [kM] \| ", line) for line in rows), out.stdout
    assert "fastest: -j " in out.stdout and "writers=" in out.stdout
    assert "taosdata" not in out.stdout + out.stderr
    assert bench_dbs() == before
    assert len(taospy_rows(db, "SELECT ts FROM meters")) == 6_000  # the named database is only read


@pytest.mark.parametrize("args,said", [
    (["-t", "csv:/tmp/x.csv"], "measures taos://, taos+ws:// and local: targets"),
    (["-t", "local:/tmp/x", "--writers", "2"], "--writers: tunes taos targets"),
    (["-t", "local:/tmp/x", "-j", "1,2,3,4,5", "--level", "1,2,3,4,5"], "at most 24"),
    (["-t", "local:/tmp/x", "-j", "1,x"], "is not a list of whole numbers"),
])
def test_bench_refuses_what_it_cannot_measure_in_one_line(tmp_path: Path, args: list[str], said: str) -> None:
    out = run_cli("bench", "-f", _csv(tmp_path, 10), "-p", json.dumps(PARSER), *args)
    assert out.returncode != 0 and said in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_bench_refuses_a_consumer_source() -> None:
    out = run_cli("bench", "-f", "tmq://localhost:6030/db?group.id=g", "-t", "local:/tmp/x")
    assert out.returncode == 1 and "would take its messages" in out.stderr
