"""Whole ``tdetl`` processes against the real server: the console script leaves without the client
library's exit handler (tdetl.program), and what it wrote is all there; fetched blocks joined into
larger batches keep every row of a composite key exactly once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tdetl

from .taos_helpers import SERVERS, pytestmark, sql, taospy_rows  # noqa: F401

SCRIPT = Path(sys.executable).with_name("tdetl")  # the console script pip installed


def _fill(server: str, db: str, tables: int, rows: int, keyed: bool = False) -> None:
    """``rows`` rows in each of ``tables`` child tables; with ``keyed``, a composite key whose
    timestamps repeat (three rows share each)."""
    key = ", k INT COMPOSITE KEY" if keyed else ""
    sql(server, f"CREATE DATABASE `{db}`", f"CREATE STABLE `{db}`.m (ts TIMESTAMP{key}, v DOUBLE, s VARCHAR(12))"
                                           " TAGS (t INT)", db=None)
    for t in range(tables):
        step = 20_000
        for first in range(0, rows, step):
            ts = (lambda i: 1_700_000_000_000 + i // 3) if keyed else (lambda i: 1_700_000_000_000 + i)
            vals = " ".join(f"({ts(i)}{f', {i % 3}' if keyed else ''}, {i * 0.5}, 's{i % 97}')"
                            for i in range(first, min(rows, first + step)))
            sql(server, f"INSERT INTO `{db}`.d{t} USING `{db}`.m TAGS ({t}) VALUES {vals}")


def _content(db: str, keyed: bool = False) -> list[tuple[Any, ...]]:
    k = ", k" if keyed else ""
    return sorted(taospy_rows(db, f"SELECT tbname, t, CAST(ts AS BIGINT){k}, v, s FROM m"))


@pytest.mark.parametrize("server", SERVERS or ["unset"], ids=lambda v: v.split(":")[0])
def test_the_console_script_exits_fast_and_the_server_holds_every_row(server: str, scratch: Any) -> None:
    assert SCRIPT.exists(), f"{SCRIPT}: the tdetl console script is not installed (pip install -e .)"
    src, dst = scratch("tdetl_exit"), scratch("tdetl_exit2")
    _fill(server, src, 3, 12_000)
    out = subprocess.run([str(SCRIPT), "run", "-q", "-f", f"{server}/{src}", "-t", f"{server}/{dst}?assert"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "wrote 36,000 rows" in out.stderr
    got = _content(dst)
    assert len(got) == 36_000
    assert got == _content(src)


def test_blocks_joined_into_large_batches_keep_a_composite_key_exact(scratch: Any, tmp_path: Path) -> None:
    server = SERVERS[0] if SERVERS else pytest.skip("no TDengine server")
    src, dst = scratch("tdetl_join"), scratch("tdetl_join2")
    rows = 150_000  # more than two joined batches (65,536 rows) per table, each cut inside a key's rows
    _fill(server, src, 2, rows, keyed=True)
    summary = tdetl.run(f"{server}/{src}", f"local:{tmp_path / 'bk'}")
    assert summary.rows_written == 2 * rows
    tdetl.run(f"local:{tmp_path / 'bk'}", f"{server}/{dst}?assert")
    got = _content(dst, keyed=True)
    assert len(got) == 2 * rows
    assert got == _content(src, keyed=True)
