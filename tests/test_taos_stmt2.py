"""Many small tables per stmt2 call (tdetl/taos/stmt2.py) on the bundled server's native client:
every bindable type and NULL exact as taospy reads it back, in each precision; a value wider than
its column leaves the call to raw blocks, which name the table, column and row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tdetl
from tdetl.errors import SinkError
from tdetl.model import Column
from tdetl.taos.native import NativeConnection
from tdetl.taos.stmt2 import Stmt2Writer, bindable
from tdetl.types import TDType

from .taos_helpers import NATIVE, connect, pytestmark, taospy_rows  # noqa: F401

COLS = (("ts", "TIMESTAMP"), ("b", "BOOL"), ("i1", "TINYINT"), ("i2", "SMALLINT"), ("i4", "INT"), ("i8", "BIGINT"),
        ("u1", "TINYINT UNSIGNED"), ("u2", "SMALLINT UNSIGNED"), ("u4", "INT UNSIGNED"), ("u8", "BIGINT UNSIGNED"),
        ("f", "FLOAT"), ("d", "DOUBLE"), ("s", "VARCHAR(12)"), ("n", "NCHAR(6)"), ("vb", "VARBINARY(8)"),
        ("g", "GEOMETRY(64)"))
POINT = bytes.fromhex("0101000000000000000000F03F0000000000000040")  # WKB POINT (1 2)


def _columns() -> tuple[Column, ...]:
    out = []
    for name, text in COLS:
        base, _, size = text.partition("(")
        out.append(Column(name, TDType(base, int(size[:-1]) if size else None)))
    return tuple(out)


def _values(table: int, rows: int) -> list[list[Any]]:
    """Column-wise values; row k of every table is NULL in column k % (columns - 1) + 1."""
    cols: list[list[Any]] = [[] for _ in COLS]
    for k in range(rows):
        row = [1_700_000_000_000 + k, k % 2 == 0, -k, -300 * k, -70_000 * k, -(2**40) * k, k, 300 * k, 70_000 * k,
               2**40 * k, 0.5 * k, 1e300 / (k + 1), f"s{table}-{k}", f"ü{k}界", bytes([k, 0, 255]), POINT]
        row[k % (len(COLS) - 1) + 1] = None
        for c, v in zip(cols, row):
            c.append(v)
    return cols


def _bind(db: str, cols: tuple[Column, ...], sizes: list[int], batches: list[pa.RecordBatch], precision: str) -> int:
    """Tables t0, t1, … (``sizes`` rows each, in ``batches``) through one Stmt2Writer call; the rows taken."""
    conn = connect(NATIVE, db)
    assert isinstance(conn, NativeConnection)
    try:
        writer = Stmt2Writer(conn, cols)
        data = pa.concat_batches(batches)
        assert writer.fits(data)
        taken = writer.write([f"t{t}" for t in range(len(sizes))], sizes, data, precision)
        writer.close()
        return taken
    finally:
        conn.close()


@pytest.mark.skipif(not NATIVE, reason="stmt2 batches are the native client's")
@pytest.mark.parametrize("precision", ["ms", "us", "ns"])
def test_every_bindable_type_and_null_is_exact(scratch: Any, precision: str) -> None:
    db = scratch("tdetl_stmt2")
    cols = _columns()
    assert bindable(cols)
    ddl = ", ".join(f"`{n}` {t}" for n, t in COLS)
    with connect(NATIVE) as conn:
        conn.execute(f"CREATE DATABASE `{db}` PRECISION '{precision}'")
        conn.execute(f"CREATE STABLE `{db}`.m ({ddl}) TAGS (t INT)")
        for t in range(3):
            conn.execute(f"CREATE TABLE `{db}`.`t{t}` USING `{db}`.m TAGS ({t})")
    sizes = [5, 1, 17]
    scale = {"ms": 1, "us": 1_000, "ns": 1_000_000}[precision]
    arrow = [pa.timestamp("ms"), pa.bool_(), pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(),
             pa.uint32(), pa.uint64(), pa.float32(), pa.float64(), pa.string(), pa.string(), pa.binary(), pa.binary()]
    batches = [pa.record_batch([pa.array(v, t) for v, t in zip(_values(t, n), arrow)], names=[n for n, _ in COLS])
               for t, n in enumerate(sizes)]
    assert _bind(db, cols, sizes, batches, precision) == sum(sizes)
    names = ", ".join("CAST(ts AS BIGINT)" if n == "ts" else f"`{n}`" for n, _ in COLS)
    got = sorted(taospy_rows(db, f"SELECT tbname, {names} FROM m"), key=lambda r: (r[0], r[1]))
    want = []
    for t, n in enumerate(sizes):
        for row in zip(*_values(t, n)):
            r = list(row)
            r[0] = r[0] * scale
            want.append((f"t{t}", *r))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g[:11] == w[:11] and g[13:15] == w[13:15], (g, w)
        assert (g[11] is None) == (w[11] is None) and (g[11] is None or abs(g[11] - w[11]) < 1e-6)  # FLOAT
        assert g[12] == w[12]  # DOUBLE, exact
        assert g[15] == w[15] or (w[15] is not None and bytes(g[15]) == w[15])  # VARBINARY
        assert (g[16] is None) == (w[16] is None)  # GEOMETRY: stored as given, read back as WKB


def test_a_value_wider_than_its_column_is_named_by_table_column_and_row(scratch: Any, tmp_path: Path) -> None:
    db = scratch("tdetl_stmt2w")
    server = NATIVE or pytest.skip("native only")
    with connect(server) as conn:
        conn.execute(f"CREATE DATABASE `{db}`")
        conn.execute(f"CREATE STABLE `{db}`.m (ts TIMESTAMP, v NCHAR(3)) TAGS (g INT)")
    wide = {(4, 2)}  # table 4, row 2: four characters in NCHAR(3)
    rows = [f"t{i},{1700000000000 + k},{'界' * (4 if (i, k) in wide else 3)},{i}" for i in range(8) for k in range(5)]
    (tmp_path / "m.csv").write_text("tb,ts,v,g\n" + "\n".join(rows) + "\n")
    parser = json.dumps({"parse": {"ts": {"as": "timestamp(ms)"}, "g": {"as": "int"}},
                         "model": {"name": "{tb}", "using": "m", "tags": ["g"], "columns": ["ts", "v"]}})
    with pytest.raises(SinkError) as e:
        tdetl.run(f"csv:{tmp_path / 'm.csv'}", f"{server}/{db}?writers=1", parser=parser)
    assert "table 't4'" in str(e.value) and "'v'" in str(e.value) and "row 2" in str(e.value), e.value


_KINDS = {"INT": (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
          "BIGINT UNSIGNED": (pa.uint64(), st.integers(0, 2**64 - 1)),
          "DOUBLE": (pa.float64(), st.floats(allow_nan=False, allow_infinity=False, width=64)),
          "BOOL": (pa.bool_(), st.booleans()),
          "VARCHAR(6)": (pa.string(), st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=6)),
          "NCHAR(3)": (pa.string(), st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                                            max_size=3)),
          "VARBINARY(4)": (pa.binary(), st.binary(max_size=4))}


@pytest.mark.skipif(not NATIVE, reason="stmt2 batches are the native client's")
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_tables_bound_many_per_call_read_back_exact(scratch: Any, data: st.DataObject) -> None:
    """Tables of random sizes (empty values, NULLs, any unicode) in one call equal what taospy reads."""
    db = scratch("tdetl_stmt2p")
    kinds = data.draw(st.lists(st.sampled_from(sorted(_KINDS)), min_size=1, max_size=4, unique=True))
    cols = (Column("ts", TDType("TIMESTAMP")), *(
        Column(f"c{i}", TDType(k.split("(")[0], int(k.split("(")[1][:-1]) if "(" in k else None))
        for i, k in enumerate(kinds)))
    sizes = data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=5))
    with connect(NATIVE) as conn:
        conn.execute(f"CREATE DATABASE `{db}`")
        conn.execute(f"CREATE STABLE `{db}`.m (ts TIMESTAMP, "
                     + ", ".join(f"c{i} {k}" for i, k in enumerate(kinds)) + ") TAGS (t INT)")
        for t in range(len(sizes)):
            conn.execute(f"CREATE TABLE `{db}`.`t{t}` USING `{db}`.m TAGS ({t})")
    want: list[tuple[Any, ...]] = []
    batches = []
    for t, n in enumerate(sizes):
        columns = [[1_700_000_000_000 + k for k in range(n)]]
        for k in kinds:
            columns.append([data.draw(st.none() | _KINDS[k][1]) for _ in range(n)])
        batches.append(pa.record_batch([pa.array(columns[0], pa.timestamp("ms")),
                                        *(pa.array(v, _KINDS[k][0]) for v, k in zip(columns[1:], kinds))],
                                       names=[c.name for c in cols]))
        want += [(f"t{t}", *row) for row in zip(*columns)]
    assert _bind(db, cols, sizes, batches, "ms") == sum(sizes)
    names = ", ".join(["CAST(ts AS BIGINT)", *(f"c{i}" for i in range(len(kinds)))])
    got = sorted(taospy_rows(db, f"SELECT tbname, {names} FROM m"), key=lambda r: (r[0], r[1]))
    got = [tuple(bytes(v) if isinstance(v, (bytearray, memoryview)) else v for v in r) for r in got]
    assert got == sorted(want, key=lambda r: (r[0], r[1]))
