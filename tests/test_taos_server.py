"""What users will hit on a real TDengine 3.3.7.5 (servers: tests/taos_helpers.py): values at the
edges, names that need escaping, composite keys, many tables, several super tables. Every check
compares what the server holds, read by taospy (not by tdetl's decoder), with what was written."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import tdetl
from tdetl.errors import SinkError

from .taos_helpers import NATIVE, REST, SERVERS, TRANSPORTS, WS, pytestmark, sql, taospy_rows  # noqa: F401

# -- values at the edges ---------------------------------------------------------------------------

EDGE_PARSER = {
    "parse": {"ts": {"as": "timestamp(us)"}, "f": {"as": "float"}, "d": {"as": "double"}, "i8": {"as": "tinyint"},
              "i64": {"as": "bigint"}, "u64": {"as": "bigint unsigned"}, "vc": {"as": "varchar(24)"},
              "nc": {"as": "nchar(8)"}, "tn": {"as": "nchar(16)"}, "tv": {"as": "varchar(40)"}, "ti": {"as": "int"}},
    "model": {"name": "{tb}", "using": "edges", "tags": ["tn", "tv", "ti"],
              "columns": ["ts", "f", "d", "i8", "i64", "u64", "vc", "nc"]},
}
EDGE_CSV = [
    "tb,ts,f,d,i8,i64,u64,vc,nc,tn,tv,ti",
    # 4-byte UTF-8, quotes and backslashes in tags and values; extreme integers; empty strings
    'e0,1700000000000001,1.5,-2.5,-128,-9223372036854775808,0,"","😀𝄞ab","😀 𝄞 tag","it\'s ""q"" \\ back\\\\",'
    "-2147483648",
    'e0,1700000000000002,-3.4028234663852886e38,1.7976931348623157e308,127,9223372036854775807,'
    '18446744073709551615,"a\'b\\c","中文",,,',
    "e0,1700000000000003,,,,,,,,,,",  # every column NULL
    # a child table whose tags are all NULL
    "e1,1700000000000004,0.25,0.125,0,0,1,x,y,,,",
]
NAN_CSV = ["e2,1700000000000005,NaN,inf,1,1,1,n,n,nan,nan,1", "e2,1700000000000006,-inf,-inf,2,2,2,n,n,nan,nan,1"]


def _edge_rows(db: str) -> list[tuple[Any, ...]]:
    rows = taospy_rows(db, "SELECT tbname, tn, tv, ti, CAST(ts AS BIGINT), f, d, i8, i64, u64, vc, nc FROM edges")
    return sorted(rows, key=lambda r: r[4])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _edges_equal(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> bool:
    return len(got) == len(want) and all(len(g) == len(w) and all(map(_same, g, w)) for g, w in zip(got, want))


EDGE_WANT = [
    ("e0", "😀 𝄞 tag", 'it\'s "q" \\ back\\\\', -2147483648, 1700000000000001, 1.5, -2.5, -128,
     -9223372036854775808, 0, "", "😀𝄞ab"),
    ("e0", "😀 𝄞 tag", 'it\'s "q" \\ back\\\\', -2147483648, 1700000000000002, -3.4028234663852886e38,
     1.7976931348623157e308, 127, 9223372036854775807, 18446744073709551615, "a'b\\c", "中文"),
    ("e0", "😀 𝄞 tag", 'it\'s "q" \\ back\\\\', -2147483648, 1700000000000003, None, None, None, None, None, None,
     None),
    ("e1", None, None, None, 1700000000000004, 0.25, 0.125, 0, 0, 1, "x", "y"),
]
NAN_WANT = [("e2", "nan", "nan", 1, 1700000000000005, math.nan, math.inf, 1, 1, 1, "n", "n"),
            ("e2", "nan", "nan", 1, 1700000000000006, -math.inf, -math.inf, 2, 2, 2, "n", "n")]


@pytest.mark.parametrize("target", TRANSPORTS or ["unset"], ids=lambda v: v.split(":")[0])
def test_edge_values_written_by_each_transport(target: str, scratch: Any, tmp_path: Path) -> None:
    raw = not target.startswith("taos+http")  # REST writes SQL text, which cannot carry NaN/inf
    (tmp_path / "e.csv").write_text("\n".join(EDGE_CSV + (NAN_CSV if raw else [])) + "\n", encoding="utf-8")
    db = scratch("tdetl_edge")
    tdetl.run(f"csv:{tmp_path / 'e.csv'}", f"{target}/{db}?assert", parser=json.dumps(EDGE_PARSER))
    assert _edges_equal(_edge_rows(db), EDGE_WANT + (NAN_WANT if raw else []))


def test_nan_over_rest_is_refused_naming_the_value(scratch: Any, tmp_path: Path) -> None:
    if not REST:
        pytest.skip("REST is tested through taosAdapter: set TDETL_TEST_TAOSWS")
    (tmp_path / "e.csv").write_text("\n".join([EDGE_CSV[0], *NAN_CSV]) + "\n", encoding="utf-8")
    with pytest.raises(SinkError, match=r"table 'e2': column 'f' row 0: nan cannot be written as SQL text"):
        tdetl.run(f"csv:{tmp_path / 'e.csv'}", f"{REST[0]}/{scratch('tdetl_nan')}?assert",
                  parser=json.dumps(EDGE_PARSER))


@pytest.mark.parametrize("source", SERVERS or ["unset"], ids=lambda v: v.split(":")[0])
def test_edge_values_read_by_each_transport(source: str, scratch: Any, tmp_path: Path) -> None:
    """Written once natively, read back through each raw transport into a second database."""
    (tmp_path / "e.csv").write_text("\n".join(EDGE_CSV + NAN_CSV) + "\n", encoding="utf-8")
    one, two = scratch("tdetl_edge"), scratch("tdetl_edge2")
    tdetl.run(f"csv:{tmp_path / 'e.csv'}", f"{SERVERS[0]}/{one}?assert", parser=json.dumps(EDGE_PARSER))
    tdetl.run(f"{source}/{one}", f"{SERVERS[-1]}/{two}?assert")
    assert _edges_equal(_edge_rows(two), EDGE_WANT + NAN_WANT)


# -- names, keys, many tables ---------------------------------------------------------------------

def _snapshot(db: str) -> dict[str, Any]:
    """Every super table's rows with tags, every normal table's rows, every table's schema, as taospy
    reads them."""
    out: dict[str, Any] = {}
    for (name,) in taospy_rows(db, f"SELECT stable_name FROM information_schema.ins_stables WHERE db_name = '{db}'"):
        desc = taospy_rows(db, f"DESCRIBE `{name}`")
        tags = [r[0] for r in desc if r[3] == "TAG"]
        cols = [r[0] for r in desc if r[3] != "TAG"]
        picked = ", ".join(["tbname", *(f"`{t}`" for t in tags), "CAST(`ts` AS BIGINT)",
                            *(f"`{c}`" for c in cols[1:])])
        out[f"stable {name}"] = ([r[:4] for r in desc], sorted(taospy_rows(db, f"SELECT {picked} FROM `{name}`"),
                                                               key=repr))
        out[f"children {name}"] = sorted(taospy_rows(db, f"SELECT TAGS tbname, {', '.join(f'`{t}`' for t in tags)}"
                                                         f" FROM `{name}`"), key=repr)
    for (name,) in taospy_rows(db, f"SELECT table_name FROM information_schema.ins_tables WHERE db_name = '{db}'"
                                   " AND type = 'NORMAL_TABLE'"):
        desc = taospy_rows(db, f"DESCRIBE `{name}`")
        picked = ", ".join(["CAST(`ts` AS BIGINT)", *(f"`{r[0]}`" for r in desc[1:])])
        out[f"table {name}"] = ([r[:4] for r in desc], sorted(taospy_rows(db, f"SELECT {picked} FROM `{name}`"),
                                                              key=repr))
    return out


ESCAPED = [
    "CREATE STABLE `MixedCase` (`ts` TIMESTAMP, `Value` INT, `select` NCHAR(4)) TAGS (`Tag` NCHAR(8), `desc` INT)",
    "CREATE TABLE `中文表` USING `MixedCase` TAGS ('ü''q', 1)",
    "CREATE TABLE `from` USING `MixedCase` TAGS ('back\\\\', 2)",
    "CREATE TABLE `a b` USING `MixedCase` TAGS (NULL, NULL)",
    "CREATE TABLE `CamelCase` USING `MixedCase` TAGS ('x', 3)",
    "CREATE TABLE `order` (`ts` TIMESTAMP, `group` INT, `Ñame` VARCHAR(8))",
    "INSERT INTO `中文表` VALUES (1700000000000, 1, 'a') (1700000000001, NULL, '😀')"
    " `from` VALUES (1700000000000, 2, NULL) `CamelCase` VALUES (1700000000000, 3, 'c')"
    " `order` VALUES (1700000000000, 7, 'ñ')",
]
COMPOSITE = [
    "CREATE STABLE `pk` (`ts` TIMESTAMP, `k` INT PRIMARY KEY, `v` DOUBLE) TAGS (`g` INT)",
    "CREATE TABLE `pkn` (`ts` TIMESTAMP, `k` VARCHAR(8) PRIMARY KEY, `v` INT)",
    "INSERT INTO `p0` USING `pk` TAGS (1) VALUES (1700000000000, 1, 0.5) (1700000000000, 2, 1.5)"
    " (1700000000000, 3, 2.5) (1700000000001, 1, 3.5)"
    " `pkn` VALUES (1700000000000, 'a', 1) (1700000000000, 'b', 2) (1700000000002, 'a', 3)",
]


@pytest.mark.parametrize("source,target", [(a, b) for a in SERVERS for b in TRANSPORTS] or [("unset", "unset")],
                         ids=lambda v: v.split(":")[0])
def test_escaped_names_and_composite_keys_survive_a_sync(source: str, target: str, scratch: Any) -> None:
    one, two = scratch("tdetl_names"), scratch("tdetl_names2")
    sql(source, f"CREATE DATABASE `{one}` VGROUPS 1 BUFFER 16")
    sql(source, *ESCAPED, *COMPOSITE, db=one)
    s = tdetl.run(f"{source}/{one}", f"{target}/{two}?assert")
    assert s.rows_written == 4 + 1 + 4 + 3
    got, want = _snapshot(two), _snapshot(one)
    assert got == want
    assert [r[3] for r in want["stable pk"][0]][:2] == ["", "COMPOSITE KEY"]
    assert len(want["stable pk"][1]) == 4 and len(want["children MixedCase"]) == 4


def test_escaped_names_and_composite_keys_survive_backup_and_restore(scratch: Any, tmp_path: Path) -> None:
    one, two = scratch("tdetl_names"), scratch("tdetl_names2")
    sql(SERVERS[0], f"CREATE DATABASE `{one}` VGROUPS 1 BUFFER 16")
    sql(SERVERS[0], *ESCAPED, *COMPOSITE, db=one)
    tdetl.run(f"{SERVERS[0]}/{one}", f"local:{tmp_path / 'bk'}")
    tdetl.run(f"local:{tmp_path / 'bk'}", f"{SERVERS[-1]}/{two}?assert")
    assert _snapshot(two) == _snapshot(one)


def test_many_child_tables_several_stables_and_normal_tables(scratch: Any, tmp_path: Path) -> None:
    """1,200 child tables of one super table, a second super table, two normal tables: backup, then
    restore through another transport, then sync with select-from-stable; all equal."""
    one, two, three = scratch("tdetl_many"), scratch("tdetl_many2"), scratch("tdetl_many3")
    lines = ["tb,ts,v,g,loc"] + [f"c{i},{1700000000000 + k},{i * 10 + k},{i % 7},site{i % 13}"
                                 for i in range(1200) for k in range(2)]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    parser = {"parse": {"ts": {"as": "timestamp(ms)"}, "v": {"as": "int"}, "g": {"as": "int"},
                        "loc": {"as": "varchar(16)"}},
              "model": {"name": "{tb}", "using": "big", "tags": ["g", "loc"], "columns": ["ts", "v"]}}
    tdetl.run(f"csv:{tmp_path / 'm.csv'}", f"{SERVERS[0]}/{one}?assert", parser=json.dumps(parser))
    sql(SERVERS[0], "CREATE STABLE other (ts TIMESTAMP, x DOUBLE) TAGS (k NCHAR(4))",
        "INSERT INTO o1 USING other TAGS ('a') VALUES (1700000000000, 1.5) o2 USING other TAGS (NULL) VALUES"
        " (1700000000000, 2.5)", "CREATE TABLE n1 (ts TIMESTAMP, s VARCHAR(4))",
        "INSERT INTO n1 VALUES (1700000000000, 'z')", "CREATE TABLE n2 (ts TIMESTAMP, i INT)", db=one)
    s = tdetl.run(f"{SERVERS[0]}/{one}", f"local:{tmp_path / 'bk'}", jobs=2)
    assert s.rows_written == 2400 + 2 + 1
    tdetl.run(f"local:{tmp_path / 'bk'}", f"{SERVERS[-1]}/{two}?assert", jobs=2)
    want = _snapshot(one)
    assert len(want["children big"]) == 1200 and len(want["stable big"][1]) == 2400
    assert _snapshot(two) == want
    tdetl.run(f"{SERVERS[-1]}/{one}?select-from-stable", f"{SERVERS[0]}/{three}?assert", jobs=2)
    assert _snapshot(three) == want


def test_composite_key_positions_never_split_a_timestamp(scratch: Any) -> None:
    """The server sends results in blocks of ~4k rows; 120 rows share each timestamp, so blocks end
    inside a timestamp's run. Each batch must hold whole runs and be positioned at its last timestamp,
    since a resume reads ``ts > position``."""
    from tdetl.drivers import open_source
    from tdetl.pipeline import Options

    db = scratch("tdetl_pkpos")
    sql(SERVERS[0], f"CREATE DATABASE `{db}` VGROUPS 1 BUFFER 16")
    values = [f"({1700000000000 + t}, {k}, {t * 1000 + k})" for t in range(100) for k in range(120)]
    sql(SERVERS[0], "CREATE TABLE pkn (ts TIMESTAMP, k INT PRIMARY KEY, v INT)",
        *(f"INSERT INTO pkn VALUES {' '.join(values[i:i + 3000])}" for i in range(0, len(values), 3000)), db=db)
    for server in SERVERS:
        source = open_source(f"{server}/{db}", Options())
        try:
            batches = list(source.read(source.partitions()[0]))
        finally:
            source.close()
        assert len(batches) > 1 and sum(b.num_rows for b in batches) == 12_000
        seen = -1
        for b in batches:
            ts = b.data.column(0).cast(pa.int64()).to_pylist()
            assert b.num_rows % 120 == 0 and ts[0] > seen and b.position == ts[-1]
            seen = ts[-1]
        assert [v for b in batches for v in b.data.column("v").to_pylist()] == [
            t * 1000 + k for t in range(100) for k in range(120)]
