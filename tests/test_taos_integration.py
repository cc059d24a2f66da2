"""Against a real TDengine 3.3 server (opt-in): set TDETL_TEST_TAOS=taos://root:taosdata@host:6030
(native; needs libtaos) and/or TDETL_TEST_TAOSWS=taos+ws://root:taosdata@host:6041 (taosAdapter).
Each test works in a database of its own and drops it afterwards."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import tdetl
from tdetl.dsn import parse_dsn
from tdetl.errors import SinkError
from tdetl.taos.conn import Connection
from tdetl.taos.connect import open_connection

from .test_roundtrip import COLUMNS, expected_rows, normalise, write_csv

SERVERS = [v.rstrip("/") for v in (os.environ.get("TDETL_TEST_TAOS"), os.environ.get("TDETL_TEST_TAOSWS")) if v]
pytestmark = [
    pytest.mark.taos,
    pytest.mark.skipif(not SERVERS, reason="no TDengine server: set TDETL_TEST_TAOS=taos://root:taosdata@host:6030"
                                           " and/or TDETL_TEST_TAOSWS=taos+ws://root:taosdata@host:6041"),
]


def _connect(server: str, db: str | None = None) -> Connection:
    return open_connection(parse_dsn(server + "/"), db)


@pytest.fixture(params=SERVERS or ["unset"])
def server(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db(server: str) -> Iterator[str]:
    name = f"tdetl_it_{uuid.uuid4().hex[:12]}"
    yield name
    with _connect(server) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS `{name}`")


def _read_back(db: str, sql: str) -> list[pa.Table]:
    """The same query through every configured transport."""
    out = []
    for s in SERVERS:
        with _connect(s, db) as conn:
            out.append(conn.query(sql).table())
    return out


def _no_json_tag(parser: str) -> str:
    """TDengine allows a JSON tag only as a super table's single tag: drop it from the model."""
    cfg = json.loads(parser)
    cfg["model"]["tags"] = [t for t in cfg["model"]["tags"] if t != "t_json"]
    return json.dumps(cfg)


@pytest.mark.parametrize("precision", ["ms", "us", "ns"])
def test_every_column_type_written_and_read_back(server: str, db: str, tmp_path: Path, precision: str) -> None:
    parser = _no_json_tag(write_csv(tmp_path / "all.csv", precision))
    summary = tdetl.run(f"csv:{tmp_path / 'all.csv'}", f"{server}/{db}?assert", parser=parser)
    assert summary.rows_written == len(expected_rows(precision))
    cols = ", ".join(f"`{c}`" for c, _ in COLUMNS)
    want = [{k: v for k, v in r.items() if k != "t_json"} for r in expected_rows(precision)]
    for got in _read_back(db, f"SELECT tbname, t_id, t_name, {cols} FROM alltypes"):
        assert got.schema.field("ts").type == pa.timestamp(precision)
        assert normalise(got) == want


def test_json_tag(server: str, db: str, tmp_path: Path) -> None:
    (tmp_path / "j.csv").write_text('tb,ts,v,j\nj0,1700000000000,1,"{""k"":""v"",""n"":1}"\nj1,1700000001000,2,\n')
    parser = {"parse": {"ts": {"as": "timestamp(ms)"}, "v": {"as": "int"}, "j": {"as": "json"}},
              "model": {"name": "{tb}", "using": "jt", "tags": ["j"], "columns": ["ts", "v"]}}
    tdetl.run(f"csv:{tmp_path / 'j.csv'}", f"{server}/{db}?assert", parser=json.dumps(parser))
    for got in _read_back(db, "SELECT tbname, j, v FROM jt ORDER BY v"):
        rows = got.to_pylist()
        assert [r["v"] for r in rows] == [1, 2]
        assert json.loads(rows[0]["j"]) == {"k": "v", "n": 1} and rows[1]["j"] in (None, "null")


def test_missing_database_needs_assert(server: str, db: str, tmp_path: Path) -> None:
    parser = _no_json_tag(write_csv(tmp_path / "all.csv", "us"))
    with pytest.raises(SinkError, match=r"cannot be used: .*\(add \?assert to create it\)"):
        tdetl.run(f"csv:{tmp_path / 'all.csv'}", f"{server}/{db}", parser=parser)
    tdetl.run(f"csv:{tmp_path / 'all.csv'}", f"{server}/{db}?assert", parser=parser)
    with _connect(server) as conn:
        got = conn.query(f"SELECT `precision` FROM information_schema.ins_databases WHERE name = '{db}'").table()
    assert got.column(0).to_pylist() == ["us"]


def test_failes_to_records_failing_tables_and_continues(server: str, db: str, tmp_path: Path) -> None:
    with _connect(server) as conn:
        conn.execute(f"CREATE DATABASE `{db}`")
        conn.execute(f"CREATE STABLE `{db}`.`m` (ts TIMESTAMP, v VARCHAR(2)) TAGS (g INT)")
    (tmp_path / "m.csv").write_text("tb,ts,v,g\nok,1700000000000,ab,1\nbad,1700000000000,abcdef,2\n")
    parser = json.dumps({"parse": {"ts": {"as": "timestamp(ms)"}, "g": {"as": "int"}},
                         "model": {"name": "{tb}", "using": "m", "tags": ["g"], "columns": ["ts", "v"]}})
    with pytest.raises(SinkError, match="table 'bad'"):
        tdetl.run(f"csv:{tmp_path / 'm.csv'}", f"{server}/{db}", parser=parser)
    failed = tmp_path / "failed.txt"
    tdetl.run(f"csv:{tmp_path / 'm.csv'}", f"{server}/{db}?failes-to={failed}", parser=parser)
    lines = failed.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bad\t")
    for got in _read_back(db, "SELECT tbname, v FROM m"):
        assert got.to_pylist() == [{"tbname": "ok", "v": "ab"}]


def test_blob_tables_are_written_through_sql(server: str, db: str, tmp_path: Path) -> None:
    blobs = [b"", b"\x00\x01binary\xff", bytes(range(256)) * 40]
    lines = ["tb,ts,b,g"] + [f"b0,{1700000000000 + i},\\x{v.hex()},1" for i, v in enumerate(blobs)]
    (tmp_path / "b.csv").write_text("\n".join(lines) + "\nb0,1700000000009,,1\n")
    parser = {"parse": {"ts": {"as": "timestamp(ms)"}, "b": {"as": "blob"}, "g": {"as": "int"}},
              "model": {"name": "{tb}", "using": "bt", "tags": ["g"], "columns": ["ts", "b"]}}
    tdetl.run(f"csv:{tmp_path / 'b.csv'}", f"{server}/{db}?assert", parser=json.dumps(parser))
    for got in _read_back(db, "SELECT b FROM bt ORDER BY ts"):
        assert got.column(0).to_pylist() == [*blobs, None]


def test_backup_restored_into_taos_equals_the_source(server: str, db: str, tmp_path: Path) -> None:
    from tdetl.samples import PARSER, meters

    meters(20 * 5000, tables=20).write_csv(tmp_path / "m.csv")
    tdetl.run(f"csv:{tmp_path / 'm.csv'}", f"local:{tmp_path / 'bk'}", parser=json.dumps(PARSER))
    s = tdetl.run(f"local:{tmp_path / 'bk'}", f"{server}/{db}?assert&block-bytes=65536", jobs=2)
    assert s.rows_written == 100_000
    want: Any = meters(20 * 5000, tables=20).sort("tbname", "ts")
    for got in _read_back(db, "SELECT tbname, groupid, location, ts, current, voltage, phase FROM meters"):
        rows = sorted(got.to_pylist(), key=lambda r: (r["tbname"], r["ts"]))
        assert len(rows) == 100_000
        assert [r["voltage"] for r in rows] == want["voltage"].to_list()
        assert [r["tbname"] for r in rows] == want["tbname"].to_list()
        assert {(r["tbname"], r["groupid"], r["location"]) for r in rows} == set(
            want.select("tbname", "groupid", "location").unique().iter_rows())
