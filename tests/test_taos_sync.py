"""TDengine to TDengine on a real server (servers: tests/taos_helpers.py): history plus rows arriving
during the run across transports, target options (assert, update-tags, timeout-per-table)."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import tdetl

from .taos_helpers import SERVERS, TRANSPORTS, db_options, pytestmark, sql, taospy_rows  # noqa: F401

PAIRS = [(a, b) for a in SERVERS for b in SERVERS if a != b] or [(s, s) for s in SERVERS] or [("unset", "unset")]


def _meters(server: str, db: str, tmp_path: Path, tables: int = 3, rows: int = 30) -> None:
    from .samples import PARSER, meters

    meters(rows, tables=tables).write_csv(tmp_path / "m.csv")
    tdetl.run(f"csv:{tmp_path / 'm.csv'}", f"{server}/{db}?assert", parser=json.dumps(PARSER))


def _rows(db: str) -> list[tuple[Any, ...]]:
    return sorted(taospy_rows(db, "SELECT tbname, groupid, location, CAST(ts AS BIGINT), current, voltage, phase"
                                  " FROM meters"))


@pytest.mark.parametrize("source,target", PAIRS, ids=lambda v: v.split(":")[0])
def test_mode_all_copies_history_then_rows_arriving_during_the_run(source: str, target: str, scratch: Any,
                                                                   tmp_path: Path) -> None:
    one, two = scratch("tdetl_all"), scratch("tdetl_all2")
    _meters(source, one, tmp_path)
    end = datetime.fromtimestamp(time.time() + 4, timezone.utc).isoformat()

    def produce() -> None:
        for k in range(6):
            time.sleep(0.4)
            sql(source, f"INSERT INTO d0 VALUES (NOW, {k}, {1000 + k}, 0.5) late USING meters TAGS (9, 'late')"
                        f" VALUES (NOW, {k}, {-k}, 0.25)", db=one)

    worker = threading.Thread(target=produce)
    worker.start()
    s = tdetl.run(f"{source}/{one}?mode=all&interval=200ms&excursion=100ms&end={end}", f"{target}/{two}?assert")
    worker.join()
    want = _rows(one)
    assert len(want) == 30 + 12
    assert _rows(two) == want and s.rows_written == len(want)


def test_assert_copies_the_database_options(server: str, scratch: Any) -> None:
    one, two = scratch("tdetl_opts"), scratch("tdetl_opts2")
    sql(server, f"CREATE DATABASE `{one}` PRECISION 'us' VGROUPS 1 BUFFER 16 KEEP 3650 DURATION 20 CACHEMODEL"
                " 'last_row' WAL_RETENTION_PERIOD 7200 MINROWS 200 COMP 1",
        f"CREATE TABLE `{one}`.t (ts TIMESTAMP, v INT)", f"INSERT INTO `{one}`.t VALUES (1700000000000001, 1)")
    tdetl.run(f"{server}/{one}", f"{server}/{two}?assert")
    want = db_options(one)
    assert db_options(two) == want and want["precision"] == "us" and want["wal_retention_period"] == 7200
    assert taospy_rows(two, "SELECT CAST(ts AS BIGINT), v FROM t") == [(1700000000000001, 1)]


def test_update_tags_sets_tags_of_tables_that_exist(server: str, scratch: Any, tmp_path: Path) -> None:
    one, two = scratch("tdetl_tags"), scratch("tdetl_tags2")
    _meters(server, one, tmp_path, tables=2, rows=4)
    sql(server, f"CREATE DATABASE `{two}` VGROUPS 1 BUFFER 16",
        f"CREATE STABLE `{two}`.meters (ts TIMESTAMP, current FLOAT, voltage INT, phase FLOAT)"
        " TAGS (groupid INT, location VARCHAR(24))",
        f"CREATE TABLE `{two}`.d0 USING `{two}`.meters TAGS (42, 'old')")
    tdetl.run(f"{server}/{one}", f"{server}/{two}")
    assert taospy_rows(two, "SELECT TAGS groupid, location FROM meters WHERE tbname = 'd0'") == [(42, "old")]
    tdetl.run(f"{server}/{one}", f"{server}/{two}?update-tags")
    tags = sorted(taospy_rows(two, "SELECT TAGS tbname, groupid, location FROM meters"))
    assert tags == sorted(taospy_rows(one, "SELECT TAGS tbname, groupid, location FROM meters"))
    assert _rows(two) == _rows(one)


@pytest.mark.parametrize("target", TRANSPORTS or ["unset"], ids=lambda v: v.split(":")[0])
def test_timeout_per_table_fails_the_table_and_failes_to_records_it(target: str, scratch: Any,
                                                                    tmp_path: Path) -> None:
    one = scratch("tdetl_tmo")
    _meters(SERVERS[0], one, tmp_path, tables=2, rows=4)
    failed = tmp_path / "failed.txt"
    tdetl.run(f"{SERVERS[0]}/{one}", f"{target}/{scratch('tdetl_tmo2')}?assert&timeout-per-table=0.001ms"
                                     f"&failes-to={failed}")
    lines = sorted(failed.read_text().splitlines())
    assert [ln.split("\t")[0] for ln in lines] == ["d0", "d1"]
    assert all("timeout-per-table=1e-06s exceeded" in ln for ln in lines)
