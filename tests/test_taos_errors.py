"""Failures a real TDengine gives (servers: tests/taos_helpers.py): a wrong password, a table dropped
while a sync reads it, the server stopping mid-run. Each is one line on stderr naming what failed
and what to do, with the password masked, and a rerun repairs whatever was half done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import tdetl

from .conftest import ROOT
from .taos_helpers import SERVERS, TRANSPORTS, Bundle, pytestmark, scalar, sql, taospy_rows  # noqa: F401


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tdetl", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def _load(server: str, db: str, tmp_path: Path, tables: int = 20, rows: int = 20 * 50) -> None:
    from .samples import PARSER, meters

    meters(rows, tables=tables).write_csv(tmp_path / "m.csv")
    tdetl.run(f"csv:{tmp_path / 'm.csv'}", f"{server}/{db}?assert", parser=json.dumps(PARSER))


def _wait_for_rows(target: str, db: str, timeout: float = 60) -> None:
    """Until the run has written its first table: its catalog is read and it is under way."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if scalar(target, "SELECT COUNT(*) FROM meters", db=db):
                return
        except Exception:  # the database or table is not created yet
            pass
        time.sleep(0.1)
    raise AssertionError(f"nothing was written to {db} within {timeout}s")


def _rows(db: str) -> list[tuple[Any, ...]]:
    return sorted(taospy_rows(db, "SELECT tbname, groupid, location, CAST(ts AS BIGINT), current, voltage, phase"
                                  " FROM meters"))


@pytest.mark.parametrize("server_url", TRANSPORTS or ["unset"], ids=lambda v: v.split(":")[0])
def test_wrong_password_is_one_masked_line(server_url: str, tmp_path: Path) -> None:
    bad = server_url.replace(":taosdata@", ":Wr0ngSecret@")
    for args in (["-f", f"{bad}/nowhere", "-t", f"local:{tmp_path / 'bk'}"],
                 ["-f", f"csv:{ROOT / 'formats/samples/meters.csv'}", "-p",
                  f"@{ROOT / 'formats/samples/meters.parser.json'}", "-t", f"{bad}/nowhere?assert"]):
        proc = _cli("run", *args)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err
        assert err.count("\n") == 1 and "Wr0ngSecret" not in err and "***" in err, err
        assert "Authentication failure" in err or "authentication" in err.lower(), err
    assert not (tmp_path / "bk").exists()


def test_a_table_dropped_during_a_sync_is_named_and_a_rerun_completes(scratch: Any, tmp_path: Path) -> None:
    one, two = scratch("tdetl_drop"), scratch("tdetl_drop2")
    _load(SERVERS[0], one, tmp_path, tables=30, rows=30 * 50)
    # one table per flush, 200 ms apart; the source is held back by the pipeline's bounded queue, and
    # reads tables in name order (d0, d1, d10 .. d29, d3 .. d9): d9 comes last, seconds from now
    proc = _cli("run", "-f", f"{SERVERS[0]}/{one}", "-t", f"{SERVERS[-1]}/{two}?assert&interval=200ms&buffer-bytes=1",
                "-q")
    _wait_for_rows(SERVERS[-1], two)
    sql(SERVERS[0], "DROP TABLE d9", db=one)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and err.count("\n") == 1, err
    assert "table 'd9'" in err and "dropped" in err and "run the same command again" in err, err
    s = tdetl.run(f"{SERVERS[0]}/{one}", f"{SERVERS[-1]}/{two}")
    assert _rows(two) == _rows(one) and s.rows_written == 29 * 50


@pytest.mark.parametrize("kind", ["native", "ws"])
def test_server_stopping_mid_run_is_one_line_and_a_rerun_completes(bundle: Bundle, kind: str, scratch: Any,
                                                                   tmp_path: Path) -> None:
    env = bundle.start()
    source = env["TDETL_TEST_TAOS"] if kind == "native" else env["TDETL_TEST_TAOSWS"]
    one, two = scratch("tdetl_down"), scratch("tdetl_down2")
    _load(source, one, tmp_path, tables=30, rows=30 * 50)
    proc = _cli("run", "-f", f"{source}/{one}", "-t", f"{SERVERS[0]}/{two}?assert&interval=200ms&buffer-bytes=1",
                "-q")  # held back as in the test above: the source still has tables to read for seconds
    _wait_for_rows(SERVERS[0], two)
    bundle.stop()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and err.count("\n") == 1, err
    assert "taosdata" not in err and one in err and "run the same command again" in err, err
    bundle.start()
    tdetl.run(f"{source}/{one}", f"{SERVERS[0]}/{two}")
    assert len(_rows(two)) == 30 * 50
    from .samples import meters

    want = meters(30 * 50, tables=30).select("tbname", "voltage").sort("tbname", "voltage").rows()
    assert sorted((r[0], r[5]) for r in _rows(two)) == want


def test_a_native_port_nothing_listens_on_is_said_at_once(tmp_path: Path) -> None:
    """libtaos retries a closed port for ~20 s before it fails; the probe says which address is
    closed (as one line, before anything is written)."""
    from .services import free_port

    (tmp_path / "a.csv").write_text("ts,v\n2024-01-01T00:00:00Z,1\n")
    port = free_port()
    res = subprocess.run([sys.executable, "-m", "tdetl", "run", "-f", f"csv:{tmp_path / 'a.csv'}", "-t",
                          f"taos://root:secret@127.0.0.1:{port}/x"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert f"[0x000B] Unable to establish connection: nothing listens on 127.0.0.1:{port}" in res.stderr
    assert "secret" not in res.stderr
