"""Parser transforms beyond the seed: regex, split, convert, filter steps and model mapping rules
(mapping, constant, generator now, join, format, sum, expr), compiled to Polars once."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

import tdetl
from tdetl.errors import ConfigError, DataError
from tdetl.transform.expr import compile_expr
from tdetl.transform.parser import load_parser

LINES = [
    ("1700000000000", "GET /x 200 12ms", "0", "California.SanFrancisco", "1.5", "2"),
    ("1700000001000", "GET /y 404 3ms", "1", "California.LosAngeles", "2.5", "3"),
    ("1700000002000", "POST /z 500 40ms", "2", "Texas.Austin", "-4", "5"),
    ("1700000003000", "PUT /w 503 7ms", "1", "Nevada.Reno.North", "9", "1"),
]
PARSER: dict[str, Any] = {
    "parse": {"ts": {"as": "timestamp(ms)"}, "a": {"as": "double"}, "b": {"as": "int"}},
    "transform": [
        {"regex": "line", "pattern": r"^(?<method>[A-Z]+) (?<path>\S+) (?<code>\d+) (?<ms>\d+)ms$",
         "as": {"code": "int", "ms": "int"}},
        {"split": "loc", "separator": ".", "count": 2},
        {"convert": "status", "map": {"0": "ok", "1": "warn"}, "default": "bad", "alias": "state"},
        {"filter": "code < 500 || starts_with(loc_1, 'Tex') && !(ms > 100)"},
    ],
    "model": {"name": "d_${loc_2}", "using": "web", "tags": ["loc_1", "loc_2"],
              "columns": ["ts", "method", "code", "ms", "state", "total", "label", "score", "k", "at", "both", "src"],
              "mapping": {
                  "total": {"sum": ["a", "b"]},
                  "label": {"format": "${upper(method)}:${pad(code, 5, '0')}|${sub_string(path, 1)}"},
                  "score": {"expr": "round(sqrt(abs(a)) * 10, 2) + b % 2"},
                  "k": {"constant": 7, "as": "smallint"},
                  "at": {"generator": "now"},
                  "both": {"join": ["method", "path"], "separator": " "},
                  "src": "line"}},
}


def _csv(tmp: Path, rows: list[tuple[str, ...]]) -> str:
    text = "ts,line,status,loc,a,b\n" + "".join(",".join(f'"{v}"' for v in r) + "\n" for r in rows)
    (tmp / "in.csv").write_text(text)
    return f"csv:{tmp / 'in.csv'}"


def _rows(db: Path, sql: str) -> list[Any]:
    with duckdb.connect(str(db)) as con:
        return con.execute(sql).fetchall()


def test_every_rule_end_to_end(tmp_path: Path) -> None:
    src = _csv(tmp_path, LINES)
    before = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=1)
    s = tdetl.run(src, f"duckdb:{tmp_path / 'o.duckdb'}", parser=json.dumps(PARSER))
    after = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(seconds=1)
    assert (s.rows_read, s.rows_written, s.rows_failed, s.rows_filtered) == (4, 3, 0, 1)  # 503 is filtered out
    got = _rows(tmp_path / "o.duckdb", 'SELECT tbname, loc_1, loc_2, method, code, ms, state, total, label,'
                                       ' score, k, "both", src, "at" FROM web ORDER BY ts')
    expected = []
    for _ts, line, status, loc, a, b in LINES[:3]:
        method, path, code, ms = line.replace("ms", "").split()
        l1, l2 = loc.split(".", 1)
        score = round(math.sqrt(abs(float(a))) * 10, 2) + int(b) % 2
        expected.append((f"d_{l2}", l1, l2, method, int(code), int(ms), {"0": "ok", "1": "warn"}.get(status, "bad"),
                         float(a) + int(b), f"{method}:{int(code):05d}|{path[1:]}", score, 7,
                         f"{method} {path}", line))
    assert [r[:-1] for r in got] == expected
    assert all(before <= r[-1] <= after for r in got)
    types = dict(_rows(tmp_path / "o.duckdb", "SELECT column_name, data_type FROM information_schema.columns"
                                              " WHERE table_name = 'web'"))
    assert (types["code"], types["ms"], types["k"], types["total"], types["at"]) == (
        "INTEGER", "INTEGER", "SMALLINT", "DOUBLE", "TIMESTAMP")


def test_split_keeps_the_rest_in_the_last_field_and_pads_with_nulls(tmp_path: Path) -> None:
    rows = [("1700000000000", "", "0", "a.b.c", "1", "1"), ("1700000001000", "", "0", "solo", "1", "1")]
    parser = {"parse": {"ts": {"as": "timestamp(ms)"}},
              "transform": [{"split": "loc", "separator": ".", "count": 2}],
              "model": {"name": "t", "columns": ["ts", "loc_1", "loc_2"]}}
    tdetl.run(_csv(tmp_path, rows), f"duckdb:{tmp_path / 'o.duckdb'}", parser=json.dumps(parser))
    assert _rows(tmp_path / "o.duckdb", "SELECT loc_1, loc_2 FROM t ORDER BY ts") == [("a", "b.c"), ("solo", None)]


def test_bad_records_from_rules_follow_the_policy(tmp_path: Path) -> None:
    rows = [*LINES, ("1700000004000", "garbage", "0", "X.1", "1", "1"),
            ("1700000005000", "GET /q 200 1ms", "0", "Utah.notanumber", "1", "1")]
    parser = json.loads(json.dumps(PARSER))
    parser["transform"][1]["as"] = {"loc_2": "varchar(12)"}
    src = _csv(tmp_path, rows)
    with pytest.raises(DataError) as e:
        tdetl.run(src, f"duckdb:{tmp_path / 'e.duckdb'}", parser=json.dumps(parser))
    assert str(e.value).startswith(f"{tmp_path / 'in.csv'}:6: --parser: transform[0] (regex on 'line'):"
                                   f" value 'garbage' does not match the pattern")
    archive = tmp_path / "bad.jsonl"
    parser["transform"][1]["as"] = {"loc_2": "int"}
    parser["model"]["tags"] = ["loc_1"]
    parser["model"]["name"] = "d_${loc_1}"
    s = tdetl.run(src, f"duckdb:{tmp_path / 'a.duckdb'}", parser=json.dumps(parser), on_error=f"archive:{archive}")
    bad = [json.loads(x) for x in archive.read_text().splitlines()]
    # every row fails the pattern (line 6) or the int cast of loc_2 (the others), in that order
    assert s.rows_failed == len(bad) == 6
    assert [b["record"]["line"] for b in bad] == [6, 2, 3, 4, 5, 7]
    assert "column 'loc_2' value 'notanumber' is not a valid INT" in bad[-1]["reason"]
    assert s.rows_written == 0 and s.rows_read == 6


def test_optional_regex_keeps_unmatched_rows_with_nulls(tmp_path: Path) -> None:
    rows = [("1700000000000", "GET /x 200 1ms", "0", "a", "1", "1"), ("1700000001000", "zzz", "0", "a", "1", "1")]
    parser = {"parse": {"ts": {"as": "timestamp(ms)"}},
              "transform": [{"regex": "line", "pattern": r"(?<code>\d{3})", "optional": True, "as": {"code": "int"}}],
              "model": {"name": "t", "columns": ["ts", "code"]}}
    tdetl.run(_csv(tmp_path, rows), f"duckdb:{tmp_path / 'o.duckdb'}", parser=json.dumps(parser))
    assert _rows(tmp_path / "o.duckdb", "SELECT code FROM t ORDER BY ts") == [(200,), (None,)]


SCHEMA = {"i": pl.Int64, "f": pl.Float64, "s": pl.String, "ts": pl.Datetime("ms"), "n": pl.Int64}
FRAME = pl.DataFrame({"i": [1, 2, 3, None], "f": [0.25, -4.0, 9.0, 1.0], "s": ["California", " x ", "ab", None],
                      "ts": [datetime(2024, 1, 1), datetime(2024, 1, 1, 12), datetime(2024, 1, 2),
                             datetime(2024, 1, 3)],
                      "n": [None, None, None, None]}, schema=SCHEMA)


@pytest.mark.parametrize("text,expected", [
    ("1 + 2 * 3 == 7 && !(i > 2)", [True, True, False, None]),
    ("i > 1 || s == 'California'", [True, True, True, None]),
    ("-i + 10 % 4", [1, 0, -1, None]),
    ("(i + 1) * 2 / 4", [1.0, 1.5, 2.0, None]),
    ("starts_with(s, 'Cal') && ends_with(s, 'nia') && contains(s, 'lifo')", [True, False, False, None]),
    ("len(s)", [10, 3, 2, None]),
    ("len(trim(s)) == 1", [False, True, False, None]),
    ("replace(upper(s), 'A', '_')", ["C_LIFORNI_", " X ", "_B", None]),
    ("sub_string(s, -3)", ["nia", " x ", "ab", None]),
    ("rpad(lower(s), 4, '.')", ["california", " x .", "ab..", None]),
    ("between_time_range(ts, '2024-01-01T12:00:00Z', '2024-01-02')", [False, True, True, False]),
    ("between_time_range(ts, 1704067200000, '2024-01-01 06:00:00+00:00')", [True, False, False, False]),
    ("sqrt(abs(f)) + pow(2, 3) - exp(0) + ln(1) + log10(100) + log(8, 2)", [12.5, 14.0, 15.0, 13.0]),
    ("round(sin(0) + cos(0) + floor(f) + ceil(f), 1)", [2.0, -7.0, 19.0, 3.0]),
    ("max(i, f, 2) - min(i, 0)", [2.0, 2.0, 9.0, 2.0]),
    ("n == null || i == 3", [None, None, True, None]),
    ("`i` >= 2 && `s` != \"ab\"", [False, True, False, None]),
])
def test_expression_language(text: str, expected: list[Any]) -> None:
    expr, _ = compile_expr(text, "t", SCHEMA)
    got = FRAME.select(expr.alias("o"))["o"].to_list()
    assert got == pytest.approx(expected) if any(isinstance(v, float) for v in expected) else got == expected


@pytest.mark.parametrize("text,match", [
    ("i +", "unexpected end"),
    ("i > > 2", r"unexpected '>' at column 5"),
    ("nope == 1", r"unknown field 'nope' \(fields: f, i, n, s, ts\) at column 1"),
    ("frob(i)", "unknown function 'frob'"),
    ("len(s, 2)", r"len\(\) takes 1 arguments, not 2"),
    ("s > 3", "does not fit the field types: cannot compare string with numeric"),
    ("pad(s, i)", "pad's width must be a literal"),
    ("between_time_range(ts, 'yesterday', '2024-01-02')", "'yesterday' is not a time"),
    ("i # 2", "unexpected '#"),
])
def test_expression_errors_are_one_line_and_name_the_rule(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        compile_expr(text, "--parser: transform[3] (filter)", SCHEMA)
    assert str(e.value).startswith("--parser: transform[3] (filter): ") and "\n" not in str(e.value)


BASE = {"parse": {"ts": {"as": "timestamp(ms)"}, "a": {"as": "double"}}}


@pytest.mark.parametrize("extra,match", [
    ({"transform": {"regex": "x"}}, "'transform' must be a list"),
    ({"transform": [{"regex": "line", "split": "loc"}]}, r"transform\[0\] must be an object with exactly one of"),
    ({"transform": [{"regex": "line", "pattern": "(\\d+)"}]},
     r"transform\[0\] \(regex on 'line'\): 'pattern' needs named"),
    ({"transform": [{"regex": "line", "pattern": "(?<a>[)"}]}, "is not a valid regex"),
    ({"transform": [{"regex": "line", "pattern": "(?<a>x)", "flags": "i"}]}, "unknown key 'flags'"),
    ({"transform": [{"split": "loc", "separator": "."}]},
     r"\(split on 'loc'\): 'count' must be how many fields loc_1..n"),
    ({"transform": [{"split": "", "count": 2}]}, "must name the field it reads"),
    ({"transform": [{"convert": "status", "map": []}]}, r"\(convert on 'status'\): 'map' must be an object"),
    ({"transform": [{"split": "loc", "separator": ".", "count": 2, "as": {"loc_3": "int"}}]},
     "'as' names 'loc_3', which this rule does not produce"),
    ({"transform": [{"split": "loc", "separator": ".", "count": 2, "as": {"loc_1": "intt"}}]}, "unknown type 'intt'"),
    ({"transform": [{"filter": ""}]}, r"transform\[0\] \(filter\): needs an expression"),
    ({"transform": [{"filter": "a + 1"}]},
     r"transform\[0\] \(filter\): expression 'a \+ 1' gives Float64, not true/false"),
    ({"transform": [{"filter": "zz > 1"}]}, "unknown field 'zz'"),
    ({"transform": [{"regex": "nofield", "pattern": "(?<x>.)"}]},
     r"\(regex on 'nofield'\): field 'nofield' is not in the data"),
    ({"mapping": {"x": {"frobnicate": 1}}},
     r"--parser: model.mapping.x must be a field name or an object with exactly one of"),
    ({"mapping": {"x": {"expr": "a +* 2"}}}, r"--parser: model.mapping.x \(expr\): expression 'a \+\* 2': unexpected"),
    ({"mapping": {"x": {"format": "${nope}"}}}, r"mapping.x \(format\): expression 'nope': unknown field 'nope'"),
    ({"mapping": {"x": {"generator": "uuid"}}}, "generator 'uuid' is not known"),
    ({"mapping": {"x": {"join": "a"}}}, r"mapping.x \(join\) needs a list of field names"),
    ({"mapping": {"x": {"sum": ["a", "zz"]}}}, r"mapping.x \(sum\): field 'zz' is not in the data"),
    ({"mapping": {"x": {"constant": [1]}}}, "constant must be a string, number, boolean or null"),
    ({"mapping": {"x": {"mapping": "a", "as": "dbl"}}}, r"mapping.x: 'as': unknown type 'dbl'"),
    ({"mapping": {"x": {"expr": "line * 2"}}},
     r"mapping.x \(expr\): expression 'line \* 2' does not fit the field types"),
])
def test_rule_config_errors_name_the_rule_and_field(tmp_path: Path, extra: dict[str, Any], match: str) -> None:
    cfg = dict(BASE)
    model: dict[str, Any] = {"name": "t", "columns": ["ts", "a"]}
    if "mapping" in extra:
        model["mapping"] = extra["mapping"]
    else:
        cfg.update(extra)
    cfg["model"] = model
    src = _csv(tmp_path, LINES)
    with pytest.raises(ConfigError, match=match) as e:
        tdetl.run(src, f"local:{tmp_path / 'bk'}", parser=json.dumps(cfg))
    assert "\n" not in str(e.value) and not (tmp_path / "bk").exists()


def test_model_may_name_transform_outputs_in_the_mqtt_form() -> None:
    cfg = load_parser(json.dumps({
        "parse": {"payload": {"json": [{"name": "ts", "cast": "timestamp(ms)"}, {"name": "msg"}]}},
        "transform": [{"regex": "msg", "pattern": "(?<dev>\\w+)=(?<v>[0-9.]+)", "as": {"v": "double"}}],
        "model": {"name": "d_{dev}", "using": "m", "tags": ["dev"], "columns": ["ts", "v", "v2"],
                  "mapping": {"v2": {"expr": "v * 2"}}}}))
    assert [st.outputs() for st in cfg.steps] == [["dev", "v"]]
    assert cfg.models[0].mapping[0].target == "v2"
