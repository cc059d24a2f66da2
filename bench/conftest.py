from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from tdetl.model import Column, TableBatch, TableSpec
from tdetl.types import parse_type
from tests.samples import meters

ROWS = 1_000_000


@pytest.fixture(scope="session")
def meters_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1M rows of TDengine's meters shape (100 child tables) as one CSV file."""
    path = tmp_path_factory.mktemp("bench") / "meters.csv"
    meters(ROWS, tables=100).write_csv(path)
    return path


TABLES = 20  # the TDengine benchmarks: 20 child tables x 50,000 rows = ROWS
COLUMNS = tuple(Column(n, parse_type(t)) for n, t in
                (("ts", "TIMESTAMP"), ("current", "FLOAT"), ("voltage", "INT"), ("phase", "FLOAT")))
TAGS = tuple(Column(n, parse_type(t)) for n, t in (("groupid", "INT"), ("location", "VARCHAR(24)")))


@pytest.fixture(scope="session")
def data() -> list[TableBatch]:
    """The meters rows as one batch per child table, shaped as the taos target takes them."""
    df = meters(ROWS, tables=TABLES).sort("tbname", "ts")
    out = []
    for (name,), part in df.group_by("tbname", maintain_order=True):
        first = part.row(0, named=True)
        spec = TableSpec(str(name), COLUMNS, None, "meters", TAGS, (first["groupid"], first["location"]), "ms")
        body = part.select("ts", "current", "voltage", "phase").to_arrow()
        arrays = [body.column(0).cast(pa.timestamp("ms")), *body.columns[1:]]
        out.append(TableBatch(spec, pa.RecordBatch.from_arrays([a.combine_chunks() for a in arrays],
                                                               schema=spec.schema)))
    return out


