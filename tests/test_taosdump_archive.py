"""``taosdump:`` (tdetl/drivers/taosdump): archives the bundled taosdump writes, read with no TDengine
involved, equal the databases they came from (taospy and tdetl verify); damaged archives fail in one
line naming the file, before anything is written."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tdetl
from tdetl.drivers.taosdump import avro
from tdetl.drivers.taosdump.archive import Archive
from tdetl.dsn import parse_dsn
from tdetl.errors import BackupError, TdetlError

from .taos_helpers import ANY, NATIVE, pytestmark, sql, taospy_rows  # noqa: F401

COLS = ("ts TIMESTAMP, b BOOL, i1 TINYINT, i2 SMALLINT, i4 INT, i8 BIGINT, u1 TINYINT UNSIGNED,"
        " u2 SMALLINT UNSIGNED, u4 INT UNSIGNED, u8 BIGINT UNSIGNED, f FLOAT, d DOUBLE, s VARCHAR(10),"
        " n NCHAR(5), vb VARBINARY(8), g GEOMETRY(64)")
ROWS = ["(1700000000000{k}, true, -128, -32768, -2147483648, -9223372036854775808, 0, 0, 0, 0, 1.5, 2.25,"
        " 'abc', 'ü界', '\\x0102', 'POINT(1 2)')",
        "(1700000000001{k}, false, 127, 32767, 2147483647, 9223372036854775807, 255, 65535, 4294967295,"
        " 18446744073709551615, -0.5, -1e300, '', '', '\\x', 'POINT(-1.5 3)')",
        "(1700000000002{k}, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null)"]
SELECT = ("SELECT tbname, CAST(ts AS BIGINT), b, i1, i2, i4, i8, u1, u2, u4, u8, f, d, s, n, vb, ST_AsText(g)"
          " FROM {t}")


def _taosdump() -> str:
    found = shutil.which("taosdump")
    if found is None:
        pytest.fail("taosdump is not on PATH: eval \"$(../shared/tdengine/start.sh --env)\"")
    return found


def _source_db(db: str, precision: str) -> None:
    digits = {"ms": "", "us": "000", "ns": "000000"}[precision]
    sql(ANY, f"CREATE DATABASE `{db}` PRECISION '{precision}'", db=None)
    sql(ANY, f"CREATE STABLE `{db}`.st ({COLS}) TAGS (tj JSON)",
        f"CREATE STABLE `{db}`.st2 (ts TIMESTAMP, v INT) TAGS (g INT, loc NCHAR(8), u INT UNSIGNED)",
        f"CREATE TABLE `{db}`.n1 (ts TIMESTAMP, v INT, s NCHAR(4))")
    for t, tag in enumerate(['{"a":1,"b":"x"}', "null"]):
        values = " ".join(r.format(k=digits) for r in ROWS)
        sql(ANY, f"INSERT INTO `{db}`.c{t} USING `{db}`.st TAGS ('{tag}' ) VALUES {values}".replace("'null'", "NULL"))
    sql(ANY, f"INSERT INTO `{db}`.`Mixed Case` USING `{db}`.st2 TAGS (7, 'ñandú', 4294967295) VALUES"
             f" (1700000000000{digits}, 1) (1700000000001{digits}, NULL)",
        f"INSERT INTO `{db}`.n1 VALUES (1700000000000{digits}, 7, 'ñ') (1700000000001{digits}, NULL, NULL)")


def _dump(dbs: list[str], codec: str, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    u = parse_dsn(NATIVE + "/")
    res = subprocess.run([_taosdump(), "-h", u.host or "localhost", "-P", str(u.port or 6030), "-u", u.user or "root",
                          f"-p{u.password or 'taosdata'}", "-D", ",".join(dbs), "-d", codec, "-o", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return out


def _content(db: str) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted(taospy_rows(db, SELECT.format(t=t)) if t == "st" else taospy_rows(db, f"SELECT * FROM {t}"),
                      key=repr)
            for t in ("st", "st2", "n1")}


@pytest.mark.skipif(not NATIVE, reason="taosdump connects natively")
@pytest.mark.parametrize("codec,precision", [("null", "ms"), ("deflate", "ms"), ("snappy", "us"), ("lzma", "ns"),
                                             ("snappy", "ms")])
def test_an_archive_restores_equal_to_its_database(scratch: Any, tmp_path: Path, codec: str, precision: str) -> None:
    src, dst = scratch("tdetl_dumpsrc"), scratch("tdetl_dumpdst")
    _source_db(src, precision)
    archive = _dump([src], codec, tmp_path / "dump")
    summary = tdetl.run(f"taosdump:{archive}", f"{ANY}/{dst}?assert")
    assert summary.rows_written == 2 * 3 + 2 + 2 and summary.tables == 4
    assert _content(dst) == _content(src)
    assert taospy_rows(dst, f"SELECT `precision` FROM information_schema.ins_databases WHERE name = '{dst}'") \
        == [(precision,)]
    tags = sorted(taospy_rows(dst, "SELECT DISTINCT tbname, g, loc, u FROM st2"))
    assert tags == [("Mixed Case", 7, "ñandú", 4294967295)]
    assert tdetl.verify(f"{ANY}/{src}", f"{ANY}/{dst}")["differences"] == []


@pytest.mark.skipif(not NATIVE, reason="taosdump connects natively")
def test_an_archive_of_two_databases_goes_into_a_backup_without_a_server(scratch: Any, tmp_path: Path) -> None:
    one, two = scratch("tdetl_dumpa"), scratch("tdetl_dumpb")
    _source_db(one, "ms")
    _source_db(two, "us")
    archive = _dump([one, two], "snappy", tmp_path / "dump")
    cat = Archive.open(archive, "test").catalog
    assert set(cat.databases) == {one, two} and cat.databases[two].precision == "us"
    summary = tdetl.run(f"taosdump:{archive}", f"local:{tmp_path / 'bk'}")
    assert summary.rows_written == 2 * 10
    info = tdetl.inspect(f"local:{tmp_path / 'bk'}")
    assert info["rows"] == 20


@pytest.mark.skipif(not NATIVE, reason="taosdump connects natively")
def test_transforms_apply_to_an_archive(scratch: Any, tmp_path: Path) -> None:
    """``-T`` renames super and child tables on the way out of an archive (add-tag is not tried: st has a
    JSON tag, and a super table with one takes no other)."""
    src, dst = scratch("tdetl_dumpsrc"), scratch("tdetl_dumpdst")
    _source_db(src, "ms")
    archive = _dump([src], "deflate", tmp_path / "dump")
    tdetl.run(f"taosdump:{archive}", f"{ANY}/{dst}?assert",
              transforms=["rename-super-table:prefix:old_", "rename-child-table:suffix:_a"])
    assert sorted(taospy_rows(dst, "SELECT DISTINCT tbname FROM old_st")) == [("c0_a",), ("c1_a",)]
    assert taospy_rows(dst, "SELECT DISTINCT tbname, g, loc FROM old_st2") == [("Mixed Case_a", 7, "ñandú")]
    before = sorted(taospy_rows(src, "SELECT CAST(ts AS BIGINT), i4, s FROM st"), key=repr)
    assert sorted(taospy_rows(dst, "SELECT CAST(ts AS BIGINT), i4, s FROM old_st"), key=repr) == before


# -- damaged archives --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small archive (lzma, so the container rewriting is exercised too), made once."""
    if not NATIVE:
        pytest.skip("taosdump connects natively")
    from .taos_helpers import drop, scratch_name

    db = scratch_name("tdetl_dumpbad")
    _source_db(db, "ms")
    try:
        return _dump([db], "lzma", tmp_path_factory.mktemp("good") / "dump")
    finally:
        drop(db)


def _copy(good: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "dump"
    shutil.copytree(good, dst)
    return dst


def _data_file(root: Path) -> Path:
    return next(p for p in sorted(root.rglob("*.avro")) if p.parent.name.startswith("data") and
                (p.parent / "stbname").exists())


@pytest.mark.parametrize("damage,said", [
    (lambda r: [p.unlink() for p in list(r.rglob("dbs.sql"))], "no dbs.sql"),
    (lambda r: _data_file(r).write_bytes(b"not avro at all"), "not an Avro container"),
    (lambda r: _data_file(r).write_bytes(_data_file(r).read_bytes()[:-20]), "truncated"),
    (lambda r: _data_file(r).write_bytes(_data_file(r).read_bytes().replace(b"\x16avro.schema", b"\x15avro.schema", 1)),
     "malformed Avro header"),  # a negative key length: once followed backwards for ever
    (lambda r: [p.write_text(p.read_text().replace("TAGS (`tj` JSON)", "TAGS (`tj` JSON")) for p in r.rglob("dbs.sql")],
     "malformed TAGS"),
    (lambda r: [p.write_text(p.read_text().replace("TIMESTAMP,", "TIMESTAMPZ,", 1)) for p in r.rglob("dbs.sql")],
     "unknown type"),
])
def test_a_damaged_archive_fails_in_one_line_and_writes_nothing(good: Path, tmp_path: Path, damage: Any,
                                                                said: str) -> None:
    root = _copy(good, tmp_path)
    damage(root)
    with pytest.raises(BackupError) as e:
        tdetl.run(f"taosdump:{root}", f"local:{tmp_path / 'bk'}")
    assert said in str(e.value) and "\n" not in str(e.value) and len(str(e.value)) < 600, e.value
    assert not (tmp_path / "bk" / "manifest.json").exists()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 10_000), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)),
                                                  max_size=4))
def test_any_damage_to_a_container_is_read_or_refused_never_a_crash(good: Path, tmp_path: Path, cut: int,
                                                                    flips: list[tuple[int, int]]) -> None:
    data = bytearray(_data_file(good).read_bytes())
    for at, x in flips:
        data[at % len(data)] ^= x
    path = tmp_path / "x.avro"
    path.write_bytes(bytes(data[:len(data) - cut % len(data)]))
    try:
        table = avro.read(path)
    except BackupError as e:
        assert "\n" not in str(e) and str(path) in str(e)
    else:  # what it read is a table (the source then checks its fields against the DDL)
        assert isinstance(table, pa.Table)
    os.unlink(path)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=3))
def test_a_run_from_a_damaged_data_file_completes_or_fails_in_one_line(good: Path, tmp_path_factory: Any,
                                                                      flips: list[tuple[int, int]]) -> None:
    """Whatever a damaged data file decodes to, the run writes it whole or stops in one line."""
    tmp = tmp_path_factory.mktemp("flip")
    root = _copy(good, tmp)
    target = _data_file(root)
    data = bytearray(target.read_bytes())
    for at, x in flips:
        data[at % len(data)] ^= x
    target.write_bytes(bytes(data))
    try:
        summary = tdetl.run(f"taosdump:{root}", f"local:{tmp / 'bk'}")
    except TdetlError as e:  # the one-line errors the CLI prints
        assert "\n" not in str(e) and len(str(e)) < 600
        assert not (tmp / "bk" / "manifest.json").exists()
    else:
        assert summary.rows_written == summary.rows_read
