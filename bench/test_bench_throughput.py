"""Runs bench/throughput.py (whole processes against taosBenchmark and taosdump) when asked:
TDETL_BENCH_THROUGHPUT=<tables>x<rows>, e.g. 100x100000 or 10000x100, with the bundled server's
environment. Prints the table; asserts only that every path moved every row (the script checks the
server's row count after each write)."""

from __future__ import annotations

import os
import re

import pytest

from .throughput import main

SHAPE = os.environ.get("TDETL_BENCH_THROUGHPUT", "")


@pytest.mark.skipif(not re.fullmatch(r"\d+x\d+", SHAPE),
                    reason="opt-in: TDETL_BENCH_THROUGHPUT=<tables>x<rows> (whole-process timings take minutes)")
def test_throughput_table(capsys: pytest.CaptureFixture[str]) -> None:
    tables, rows = SHAPE.split("x")
    assert main(["--tables", tables, "--rows", rows, "--runs", os.environ.get("TDETL_BENCH_RUNS", "3")]) == 0
    with capsys.disabled():
        print("\n" + capsys.readouterr().out)
