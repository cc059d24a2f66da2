"""CSV -> local backup and local backup -> DuckDB, 1M meters rows, against Polars' bare CSV read
(the baseline: parsing the same file into typed columns, nothing more) in the same run.

    pytest bench/test_bench_local.py --benchmark-only
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import polars as pl
import pytest

import tdetl
from tests.samples import PARSER

from .conftest import ROWS

_seq = itertools.count()


def _rows_per_s(benchmark: pytest.FixtureRequest) -> None:
    benchmark.extra_info["rows"] = ROWS
    benchmark.extra_info["rows_per_s"] = ROWS / benchmark.stats.stats.min


def test_baseline_polars_read_csv(benchmark, meters_csv: Path) -> None:
    df = benchmark.pedantic(pl.read_csv, args=(meters_csv,), rounds=5, iterations=1, warmup_rounds=1)
    assert df.height == ROWS
    _rows_per_s(benchmark)


def test_csv_to_local_backup(benchmark, meters_csv: Path, tmp_path: Path) -> None:
    parser = json.dumps(PARSER)

    def target() -> tuple[tuple[str, str], dict]:
        return (f"csv:{meters_csv}", f"local:{tmp_path / f'bk{next(_seq)}'}"), {"parser": parser}

    summary = benchmark.pedantic(tdetl.run, setup=target, rounds=5, warmup_rounds=1)
    assert summary.rows_written == ROWS
    _rows_per_s(benchmark)


def test_local_backup_to_duckdb(benchmark, meters_csv: Path, tmp_path: Path) -> None:
    backup = tmp_path / "bk"
    tdetl.run(f"csv:{meters_csv}", f"local:{backup}", parser=json.dumps(PARSER))

    def target() -> tuple[tuple[str, str], dict]:
        return (f"local:{backup}", f"duckdb:{tmp_path / f'o{next(_seq)}.duckdb'}"), {}

    summary = benchmark.pedantic(tdetl.run, setup=target, rounds=5, warmup_rounds=1)
    assert summary.rows_written == ROWS
    _rows_per_s(benchmark)


def test_csv_line_check(benchmark, meters_csv: Path) -> None:
    """The pass that finds bad CSV lines before Polars parses a file (tdetl/drivers/csv/lines.py):
    its share of test_csv_to_local_backup."""
    from tdetl.drivers.csv.lines import check

    got = benchmark.pedantic(check, args=(meters_csv, ",", '"', 0, True, None), rounds=5, iterations=1,
                             warmup_rounds=1)
    assert got.bad == [] and got.clean is None
    _rows_per_s(benchmark)
