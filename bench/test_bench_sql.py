"""Runs bench/sql_sources.py (PostgreSQL and MariaDB -> taos:// as whole processes, against the readers
alone and driver + taospy stmt2) when asked: TDETL_BENCH_SQL=<rows>, e.g. 10000000, with the bundled
server's environment. Prints the table; the script itself checks every target's row count."""

from __future__ import annotations

import os

import pytest

from .sql_sources import main

ROWS = os.environ.get("TDETL_BENCH_SQL", "")


@pytest.mark.skipif(not ROWS.isdigit(), reason="opt-in: TDETL_BENCH_SQL=<rows> (whole-process timings take minutes)")
def test_sql_sources_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--rows", ROWS, "--runs", os.environ.get("TDETL_BENCH_RUNS", "2")]) == 0
    with capsys.disabled():
        print("\n" + capsys.readouterr().out)
