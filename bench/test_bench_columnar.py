"""The parquet: and orc: sources against pyarrow's bare read of the same file in the same run (the
baseline: decoding the row groups / stripes into Arrow, nothing more). 1M meters rows in tdetl's
export layout (tbname and tags as columns); the source turns them into one batch per child table.

    pytest bench/test_bench_columnar.py --benchmark-only
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest

import tdetl
from tdetl.api import make_options
from tdetl.drivers import open_source
from tests.samples import PARSER

from .conftest import ROWS

MODEL = json.dumps({"model": {"name": "{tbname}", "using": "meters", "tags": ["groupid", "location"],
                              "columns": ["ts", "current", "voltage", "phase"]}})


@pytest.fixture(scope="module")
def files(meters_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("columnar")
    tdetl.run(f"csv:{meters_csv}", f"parquet:{d / 'export'}", parser=json.dumps(PARSER))
    parquet = d / "export" / "meters.parquet"
    orc.write_table(pq.read_table(parquet).replace_schema_metadata(None), str(d / "meters.orc"))
    return {"parquet": parquet, "orc": d / "meters.orc"}


def _rows(benchmark: pytest.FixtureRequest, n: int) -> None:
    assert n == ROWS
    benchmark.extra_info["rows_per_s"] = ROWS / benchmark.stats.stats.min


def _bare(kind: str, path: Path) -> int:
    if kind == "parquet":
        return sum(b.num_rows for b in pq.ParquetFile(path).iter_batches(batch_size=1 << 20))
    f = orc.ORCFile(str(path))
    return sum(f.read_stripe(i).num_rows for i in range(f.nstripes))


def _source(kind: str, path: Path) -> int:
    src = open_source(f"{kind}:{path}", make_options(MODEL if kind == "orc" else None))
    src.catalog()
    return sum(b.num_rows for p in src.partitions() for b in src.read(p))


@pytest.mark.parametrize("kind", ["parquet", "orc"])
def test_baseline_pyarrow_read(benchmark, files: dict[str, Path], kind: str) -> None:
    _rows(benchmark, benchmark.pedantic(_bare, args=(kind, files[kind]), rounds=5, warmup_rounds=1))


@pytest.mark.parametrize("kind", ["parquet", "orc"])
def test_source_read(benchmark, files: dict[str, Path], kind: str) -> None:
    _rows(benchmark, benchmark.pedantic(_source, args=(kind, files[kind]), rounds=5, warmup_rounds=1))
