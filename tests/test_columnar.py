"""``parquet:`` and ``orc:`` as sources: tdetl's own export read back with no parser (equal in
TDengine after the round trip), files of other tools with a parser model or as one table, row-group
streaming and resume per file, and one-line errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest

import tdetl
from tdetl.api import make_options
from tdetl.drivers import open_source
from tdetl.errors import ConfigError, DsnError

from .conftest import run_cli
from .samples import PARSER, meters
from .taos_helpers import SERVERS, scratch_db, sql, taospy_rows

MODEL = {"model": {"name": "{tbname}", "using": "meters", "tags": ["groupid", "location"],
                   "columns": ["ts", "current", "voltage", "phase"]}}


def _meters(tmp: Path, rows: int = 6000, tables: int = 6) -> pl.DataFrame:
    df = meters(rows, tables=tables)
    df.write_csv(tmp / "m.csv")
    return df


def _wide(tmp: Path) -> pa.Table:
    """The meters rows as another tool writes them: tbname and tags as plain columns, no metadata."""
    _meters(tmp)
    tdetl.run(f"csv:{tmp / 'm.csv'}", f"parquet:{tmp / 'export'}", parser=json.dumps(PARSER))
    return pq.read_table(tmp / "export" / "meters.parquet").replace_schema_metadata(None)


def _read_all(dsn: str, start: dict[str, int] | None = None) -> pa.Table:
    src = open_source(dsn, make_options())
    src.catalog()
    part = src.partitions()[0]
    batches = [b.data for b in src.read(part, start)]
    return pa.Table.from_batches(batches) if batches else pa.table({"ts": pa.array([], pa.timestamp("ms"))})


@pytest.mark.parametrize("kind", ["parquet", "orc"])
def test_row_groups_stream_and_resume_inside_one(kind: str, tmp_path: Path) -> None:
    t = _wide(tmp_path).select(["ts", "current", "voltage", "phase"])
    path = tmp_path / f"plain.{kind}"
    if kind == "parquet":
        pq.write_table(t, path, row_group_size=1000)
        assert pq.ParquetFile(path).metadata.num_row_groups == 6
    else:
        orc.write_table(t, str(path), stripe_size=16 * 1024)
        assert orc.ORCFile(str(path)).nstripes > 2
    whole = _read_all(f"{kind}:{path}")
    assert whole.num_rows == 6000 and whole.column("voltage").to_pylist() == t.column("voltage").to_pylist()
    for skip in (1, 999, 1000, 2500, 5999, 6000):  # inside and on row-group (stripe) boundaries
        rest = _read_all(f"{kind}:{path}", {"row": skip})
        assert rest.column("ts").to_pylist() == t.column("ts").to_pylist()[skip:], skip


def test_other_tools_files_with_a_model_and_jobs_per_file(tmp_path: Path) -> None:
    t = _wide(tmp_path)
    (tmp_path / "in").mkdir()
    half = t.num_rows // 2
    pq.write_table(t.slice(0, half), tmp_path / "in" / "a.parquet")
    orc.write_table(t.slice(half), str(tmp_path / "in" / "b.orc"))
    pq.write_table(t.slice(half), tmp_path / "in" / "b.parquet")
    out = tmp_path / "o.duckdb"
    s = tdetl.run(f"parquet:{tmp_path / 'in'}", f"duckdb:{out}", parser=json.dumps(MODEL), jobs=2)
    assert (s.rows_read, s.rows_written, s.tables) == (6000, 6000, 6)
    with duckdb.connect(str(out)) as con:
        got = con.sql("SELECT tbname, groupid, location, epoch_ms(ts), current, voltage, phase FROM meters"
                      " ORDER BY tbname, ts").fetchall()
    want = sorted(zip(*(t.column(c).to_pylist() for c in ("tbname", "groupid", "location", "ts", "current",
                                                           "voltage", "phase"))), key=lambda r: (r[0], r[3]))
    assert [r[:3] + r[4:] for r in got] == [r[:3] + r[4:] for r in want]
    s = tdetl.run(f"orc:{tmp_path / 'in' / 'b.orc'}", f"duckdb:{tmp_path / 'orc.duckdb'}", parser=json.dumps(MODEL))
    assert s.rows_written == 3000


def test_bad_files_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"not parquet at all")
    res = run_cli("run", "-f", f"parquet:{tmp_path / 'x.parquet'}", "-t", f"local:{tmp_path / 'bk'}")
    assert res.returncode == 1 and res.stderr.count("\n") == 1
    assert f"{tmp_path / 'x.parquet'} is not a readable Parquet file" in res.stderr
    with pytest.raises(DsnError, match="no such file or directory"):
        tdetl.run(f"orc:{tmp_path / 'missing'}", f"local:{tmp_path / 'bk'}")
    pq.write_table(pa.table({"v": [1, 2], "ts": pa.array([1, 2], pa.timestamp("ms"))}), tmp_path / "v.parquet")
    with pytest.raises(ConfigError, match=r"v\.parquet: the first column must be the timestamp"):
        tdetl.run(f"parquet:{tmp_path / 'v.parquet'}", f"local:{tmp_path / 'bk'}")
    with pytest.raises(ConfigError, match="parser field 'nope' is not a column"):
        tdetl.run(f"parquet:{tmp_path / 'v.parquet'}", f"local:{tmp_path / 'bk'}",
                  parser=json.dumps({"parse": {"nope": {"as": "int"}}, **MODEL}))
    assert not (tmp_path / "bk").exists()


ALLTYPES = ("CREATE STABLE st (ts TIMESTAMP, b BOOL, i8 TINYINT, u64 BIGINT UNSIGNED, f FLOAT, d DOUBLE,"
            " v VARCHAR(5), n NCHAR(7), vb VARBINARY(8)) TAGS (g INT, loc NCHAR(12))")


@pytest.mark.taos
@pytest.mark.skipif(not SERVERS, reason="no TDengine server: set TDETL_TEST_TAOS")
def test_export_and_import_round_trip_to_tdengine_equal(tmp_path: Path) -> None:
    server = SERVERS[0]
    for one in scratch_db("tdetl_pq"):
        for two in scratch_db("tdetl_pq2"):
            sql(server, f"CREATE DATABASE {one} PRECISION 'us'")
            sql(server, ALLTYPES,
                "CREATE TABLE t1 USING st TAGS (1, '北京')", "CREATE TABLE t2 USING st TAGS (NULL, NULL)",
                "CREATE TABLE plain (ts TIMESTAMP, x INT)",
                "INSERT INTO t1 VALUES (1700000000000001, true, -8, 18446744073709551614, 1.5, 2.25, 'abc',"
                " '数据ab', '\\x0102') (1700000000000002, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
                " t2 VALUES (1700000000000003, false, 7, 0, -1, 1e300, '', 'x', '\\xff')"
                " plain VALUES (1700000000000004, 42)", db=one)
            s = tdetl.run(f"{server}/{one}", f"parquet:{tmp_path / 'x'}")
            assert s.rows_written == 4
            assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["plain.parquet", "st.parquet"]
            tdetl.run(f"parquet:{tmp_path / 'x'}", f"{server}/{two}?assert")
            assert tdetl.verify(f"{server}/{one}", f"{server}/{two}")["differences"] == []
            for table in ("st", "plain"):
                assert taospy_rows(two, f"DESCRIBE {table}") == taospy_rows(one, f"DESCRIBE {table}")
            want = taospy_rows(one, "SELECT tbname, * FROM st ORDER BY ts")
            assert taospy_rows(two, "SELECT tbname, * FROM st ORDER BY ts") == want
