"""Against a real TDengine 3.3 server (see tests/taos_helpers.py for how servers are named). Each
test works in databases of its own and drops them afterwards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import tdetl
from tdetl.errors import SinkError

from .taos_helpers import REST, TRANSPORTS, db_options, pytestmark, taospy_rows  # noqa: F401 - pytestmark marks and skips
from .taos_helpers import connect as _connect
from .taos_helpers import read_back as _read_back
from .test_roundtrip import COLUMNS, expected_rows, normalise, write_csv


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
    assert _by_taospy(db) == want


def _by_taospy(db: str) -> list[dict[str, Any]]:
    """The all-types table as taospy reads it, in expected_rows' shape."""
    names = ["tbname", "t_id", "t_name", *(c for c, _ in COLUMNS)]
    cols = ", ".join({"tbname": "tbname", "ts": "CAST(`ts` AS BIGINT)"}.get(c, f"`{c}`") for c in names)
    rows = [dict(zip(names, r)) for r in taospy_rows(db, f"SELECT {cols} FROM alltypes")]
    return sorted(rows, key=lambda r: (r["tbname"], r["ts"]))


@pytest.mark.parametrize("server", TRANSPORTS or ["unset"], ids=lambda v: v.split(":")[0])
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


def test_parallel_writers_record_each_failing_table_and_write_the_rest(server: str, db: str,
                                                                    tmp_path: Path) -> None:
    with _connect(server) as conn:
        conn.execute(f"CREATE DATABASE `{db}` VGROUPS 2")
        conn.execute(f"CREATE STABLE `{db}`.`m` (ts TIMESTAMP, v VARCHAR(2)) TAGS (g INT)")
    bad = {"t07", "t19", "t33"}
    rows = [f"t{i:02d},{1700000000000 + k},{'toolong' if f't{i:02d}' in bad else 'ok'},{i}"
            for i in range(40) for k in range(50)]
    (tmp_path / "m.csv").write_text("tb,ts,v,g\n" + "\n".join(rows) + "\n")
    parser = json.dumps({"parse": {"ts": {"as": "timestamp(ms)"}, "g": {"as": "int"}},
                         "model": {"name": "{tb}", "using": "m", "tags": ["g"], "columns": ["ts", "v"]}})
    failed = tmp_path / "failed.txt"
    tdetl.run(f"csv:{tmp_path / 'm.csv'}", f"{server}/{db}?writers=4&failes-to={failed}", parser=parser)
    assert sorted(line.split("\t")[0] for line in failed.read_text().splitlines()) == sorted(bad)
    got = taospy_rows(db, "SELECT tbname, COUNT(*) FROM m GROUP BY tbname")
    assert sorted(got) == [(f"t{i:02d}", 0 if f"t{i:02d}" in bad else 50) for i in range(40)]  # created, empty


@pytest.mark.parametrize("server", TRANSPORTS or ["unset"], ids=lambda v: v.split(":")[0])
def test_blob_tables_are_written_through_sql(server: str, db: str, tmp_path: Path) -> None:
    blobs = [b"", b"\x00\x01binary\xff", bytes(range(256)) * 40]
    lines = ["tb,ts,b,g"] + [f"b0,{1700000000000 + i},\\x{v.hex()},1" for i, v in enumerate(blobs)]
    (tmp_path / "b.csv").write_text("\n".join(lines) + "\nb0,1700000000009,,1\n")
    parser = {"parse": {"ts": {"as": "timestamp(ms)"}, "b": {"as": "blob"}, "g": {"as": "int"}},
              "model": {"name": "{tb}", "using": "bt", "tags": ["g"], "columns": ["ts", "b"]}}
    tdetl.run(f"csv:{tmp_path / 'b.csv'}", f"{server}/{db}?assert", parser=json.dumps(parser))
    for got in _read_back(db, "SELECT b FROM bt ORDER BY ts"):
        assert got.column(0).to_pylist() == [*blobs, None]
    assert [r[0] for r in taospy_rows(db, "SELECT b FROM bt ORDER BY ts")] == [*blobs, None]


def test_backup_restored_into_taos_equals_the_source(server: str, db: str, tmp_path: Path) -> None:
    from .samples import PARSER, meters

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


# -- TDengine as a source ------------------------------------------------------------------------

def _load_meters(server: str, db: str, tmp_path: Path, rows: int = 20 * 500, tables: int = 20) -> Any:
    from .samples import PARSER, meters

    data = meters(rows, tables=tables)
    data.write_csv(tmp_path / "m.csv")
    tdetl.run(f"csv:{tmp_path / 'm.csv'}", f"{server}/{db}?assert", parser=json.dumps(PARSER))
    with _connect(server) as conn:
        conn.execute(f"CREATE TABLE `{db}`.`notes` (ts TIMESTAMP, msg NCHAR(20))")
        conn.execute(f"INSERT INTO `{db}`.`notes` VALUES (1700000000000, 'héllo') (1700000000001, NULL)")
        conn.execute(f"CREATE TABLE `{db}`.`empty_child` USING `{db}`.`meters` TAGS (99, 'nowhere')")
    return data


def _snapshot(server: str, db: str) -> dict[str, Any]:
    """Everything a sync must carry: tables with tags, every row, the database precision."""
    with _connect(server, db) as conn:
        meters = conn.query("SELECT tbname, groupid, location, ts, current, voltage, phase FROM meters").table()
        tags = conn.query("SELECT TAGS tbname, groupid, location FROM meters").table()
        notes = conn.query("SELECT ts, msg FROM notes").table()
        prec = conn.query(f"SELECT `precision` FROM information_schema.ins_databases WHERE name = '{db}'").table()
    return {"meters": sorted(meters.to_pylist(), key=lambda r: (r["tbname"], r["ts"])),
            "tags": sorted(tags.to_pylist(), key=lambda r: r["tbname"]),
            "notes": sorted(notes.to_pylist(), key=lambda r: r["ts"]), "precision": prec.column(0).to_pylist()}


# every transport as source and as target of a whole-database sync (REST reads work on 3.x too)
SYNC_PAIRS = [(a, b) for a in TRANSPORTS for b in TRANSPORTS] or [("unset", "unset")]


@pytest.mark.parametrize("source,target", SYNC_PAIRS, ids=lambda v: v.split(":")[0])
def test_whole_database_sync_with_tags(source: str, target: str, scratch: Any, tmp_path: Path) -> None:
    one, two = scratch("tdetl_sync"), scratch("tdetl_sync2")
    _load_meters(source, one, tmp_path)
    s = tdetl.run(f"{source}/{one}", f"{target}/{two}?assert", jobs=2)
    assert s.rows_written == 20 * 500 + 2
    assert _snapshot(source, two) == _snapshot(source, one)
    assert _independent(two) == _independent(one)


def _independent(db: str) -> list[tuple[Any, ...]]:
    """The rows and tags as taospy reads them (not through tdetl's decoder)."""
    return sorted(taospy_rows(db, "SELECT tbname, groupid, location, CAST(ts AS BIGINT), current, voltage, phase"
                                  " FROM meters"))


def test_backup_from_taos_restores_equal_with_database_options(server: str, db: str, db2: str,
                                                               tmp_path: Path) -> None:
    _load_meters(server, db, tmp_path)
    with _connect(server) as conn:
        conn.execute(f"ALTER DATABASE `{db}` KEEP 3650 CACHEMODEL 'both' WAL_RETENTION_PERIOD 7200 STT_TRIGGER 4")
    s = tdetl.run(f"{server}/{db}", f"local:{tmp_path / 'bk'}", jobs=2)
    assert s.rows_written == 20 * 500 + 2
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    assert {"empty_child", "notes", "d0"} <= {t["name"] for t in manifest["tables"]}
    tdetl.run(f"local:{tmp_path / 'bk'}", f"{server}/{db2}?assert")
    assert _snapshot(server, db2) == _snapshot(server, db)
    want = db_options(db)
    assert db_options(db2) == want and (want["cachemodel"], want["wal_retention_period"]) == ("both", 7200)


def test_source_params_select_part_of_a_database(server: str, db: str, tmp_path: Path) -> None:
    _load_meters(server, db, tmp_path)
    start, end = "2023-11-14T22:13:30Z", "2023-11-14T22:13:40Z"  # 1_700_000_010_000 .. 1_700_000_020_000
    out = tmp_path / "part.duckdb"
    for params in (f"tables=meters.d1,d2&start={start}&end={end}",
                   f"select-from-stable&tables=meters.d1,meters.d2&start={start}&end={end}"):
        tdetl.run(f"{server}/{db}?{params}", f"duckdb:{out}")
        import duckdb

        with duckdb.connect(str(out)) as con:
            got = con.execute("SELECT tbname, count(*), min(epoch_ms(ts)), max(epoch_ms(ts)) FROM meters"
                              " GROUP BY tbname ORDER BY tbname").fetchall()
        assert got == [("d1", 10, 1_700_000_010_000, 1_700_000_019_000), ("d2", 10, 1_700_000_010_000,
                                                                            1_700_000_019_000)]
        out.unlink()


def test_realtime_sync_follows_new_rows_and_tables(server: str, db: str, db2: str, tmp_path: Path) -> None:
    import threading
    import time
    from datetime import datetime, timezone

    _load_meters(server, db, tmp_path, rows=100, tables=2)
    end = datetime.fromtimestamp(time.time() + 4, timezone.utc).isoformat()

    def produce() -> None:
        with _connect(server, db) as conn:
            for k in range(5):
                time.sleep(0.4)
                conn.execute(f"INSERT INTO d0 VALUES (NOW, {k}, {k}, 0.5) rt_new USING meters TAGS (7, 'rt')"
                             f" VALUES (NOW, {k}, {-k}, 0.5)")

    worker = threading.Thread(target=produce)
    worker.start()
    tdetl.run(f"{server}/{db}?mode=realtime&interval=200ms&excursion=100ms&end={end}", f"{server}/{db2}?assert")
    worker.join()
    for got in _read_back(db2, "SELECT tbname, voltage FROM meters ORDER BY tbname, ts"):
        rows = got.to_pylist()
        assert [r["voltage"] for r in rows if r["tbname"] == "rt_new"] == [0, -1, -2, -3, -4]
        assert [r["voltage"] for r in rows if r["tbname"] == "d0"] == [0, 1, 2, 3, 4]


def test_realtime_lag_is_how_far_the_windows_read_trail_the_clock(server: str, db: str, tmp_path: Path) -> None:
    """tdetl serve's lag for a realtime query: from where reading starts (restro) down to the
    excursion it keeps behind the clock by design."""
    import time
    from datetime import datetime, timezone

    from tdetl.api import make_options
    from tdetl.drivers import open_source

    _load_meters(server, db, tmp_path, rows=10, tables=1)
    with _connect(server, db) as conn:
        conn.execute("INSERT INTO d0 VALUES (NOW - 5s, 1, 1, 0.5)")
    end = datetime.fromtimestamp(time.time() + 2, timezone.utc).isoformat()
    src = open_source(f"{server}/{db}?mode=realtime&interval=200ms&excursion=1s&restro=20s&end={end}",
                      make_options())
    try:
        assert src.lag() is None  # not reading yet
        src.catalog()
        batches = src.read(src.partitions()[0])
        first = next(batches)
        assert first.data.num_rows == 1
        started = src.lag()
        assert started is not None and started.unit == "seconds" and 20 <= started.value < 60  # at restro
        rest = sum(b.data.num_rows for b in batches)
        assert rest == 0
        final = src.lag()
        assert final is not None and 1.0 <= final.value < 20  # read up to end, which is now - excursion or earlier
    finally:
        src.close()


def test_force_stmt_writes_equal_rows(server: str, db: str, tmp_path: Path) -> None:
    from .samples import PARSER, meters

    meters(2000, tables=4).write_csv(tmp_path / "m.csv")
    tdetl.run(f"csv:{tmp_path / 'm.csv'}", f"{server}/{db}?assert&force-stmt&batch-size=300",
              parser=json.dumps(PARSER))
    want = sorted(meters(2000, tables=4).select("tbname", "voltage").iter_rows())
    for got in _read_back(db, "SELECT tbname, voltage FROM meters"):
        assert sorted((r["tbname"], r["voltage"]) for r in got.to_pylist()) == want


@pytest.mark.parametrize("precision", ["ms", "us", "ns"])
def test_rest_target_writes_every_column_type(scratch: Any, tmp_path: Path, precision: str) -> None:
    if not REST:
        pytest.skip("REST is tested through taosAdapter: set TDETL_TEST_TAOSWS")
    db = scratch("tdetl_rest")
    parser = _no_json_tag(write_csv(tmp_path / "all.csv", precision))
    tdetl.run(f"csv:{tmp_path / 'all.csv'}", f"{REST[0]}/{db}?assert&max-sql-length=2048", parser=parser)
    cols = ", ".join(f"`{c}`" for c, _ in COLUMNS)
    want = [{k: v for k, v in r.items() if k != "t_json"} for r in expected_rows(precision)]
    for got in _read_back(db, f"SELECT tbname, t_id, t_name, {cols} FROM alltypes"):
        assert normalise(got) == want
    assert _by_taospy(db) == want


def test_sinks_creating_the_same_super_tables_at_once_wait_out_each_others_transactions(server: str, db: str) -> None:
    """Two writers (a cluster run's workers) creating the same 30 super tables at the same moment:
    the server answers one of them "Database in creating status" (0x0396) and "Conflict transaction
    not completed" (0x03D3) for most; the sink asks again, so both prepare and the server holds all 30."""
    import threading

    from tdetl.drivers import as_dsn, open_sink
    from tdetl.model import Catalog, Column, TableSpec
    from tdetl.options import Options
    from tdetl.types import parse_type

    cols = (Column("ts", parse_type("TIMESTAMP")), Column("v", parse_type("INT")))
    tags = (Column("t", parse_type("INT")),)
    catalog = Catalog()
    for i in range(30):
        catalog.add_table(TableSpec(f"c{i}", cols, db, f"s{i}", tags, (i,)))
    failed: list[BaseException] = []

    def prepare() -> None:
        sink = open_sink(as_dsn(f"{server}/{db}?assert"), Options())
        try:
            sink.prepare(catalog)
        except BaseException as e:
            failed.append(e)
        finally:
            sink.close()

    threads = [threading.Thread(target=prepare) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failed, failed[0]
    with _connect(server) as conn:
        got = conn.query(f"SELECT COUNT(*) FROM information_schema.ins_stables WHERE db_name = '{db}'").table()
    assert got.column(0)[0].as_py() == 30
