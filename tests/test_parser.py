"""Parser configs and CSV rows: bad input gives one line naming the value and where it came from."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

import tdetl
from tdetl.errors import ConfigError, DataError, DsnError, ErrorPolicy
from tdetl.transform.parser import load_parser

GOOD_MODEL = {"name": "d{id}", "using": "m", "tags": ["loc"], "columns": ["ts", "v"]}


@pytest.mark.parametrize("config,match", [
    ("{not json", "not valid JSON: .* at line 1 column 2"),
    ("[1]", "must be a JSON object"),
    ({"parse": {}, "modell": {}}, "unknown key 'modell'"),
    ({"parse": {"v": {"as": "floatt"}}}, "field 'v': unknown type 'floatt'"),
    ({"parse": {"v": {"type": "int"}}}, r"parse.v: unknown key 'type'"),
    ({"parse": {"v": "int"}}, r"parse.v must be an object"),
    ({"parse": {"a": {"alias": "x"}, "b": {"alias": "x"}}}, "alias 'x' is given to more than one"),
    ({"model": {"using": "m", "columns": ["ts"]}}, r"--parser: model needs a 'name' template"),  # one object: no [0]
    ({"model": {"name": "d", "columns": "ts"}}, r"--parser: model.columns must be a list"),
    ({"model": [{"name": "d", "tags": ["x"]}]}, r"model\[0\] needs 'columns'"),
    ({"parse": {"payload": {"json": [{"alias": "x"}]}}}, r"payload.json\[0\] needs a 'name'"),
    ({"parse": {"payload": {"json": [{"name": "a"}]}}, "model": {"name": "d{b}", "columns": ["a"]}},
     "names 'b', which no parse, transform or mapping rule produces"),
])
def test_bad_configs(config: object, match: str) -> None:
    text = config if isinstance(config, str) else json.dumps(config)
    with pytest.raises(ConfigError, match=match) as e:
        load_parser(text)
    assert "\n" not in str(e.value)


def test_seed_forms_load(tmp_path: Path) -> None:
    kafka = ('{"parse":{"ts":{"as":"timestamp(ms)"},"topic":{"as":"varchar","alias":"t"},'
             '"partition":{"as":"int","alias":"p"},"offset":{"as":"bigint","alias":"o"},'
             '"key":{"as":"binary","alias":"k"},"value":{"as":"binary","alias":"v"}},'
             '"model":[{"name":"t_{t}","using":"kafka_data","tags":["t","p"],"columns":["ts","o","k","v"]}]}')
    cfg = load_parser(kafka)
    assert [f.alias for f in cfg.fields] == ["ts", "t", "p", "o", "k", "v"]
    assert cfg.models[0].template_fields() == ["t"]
    mqtt = {"parse": {"payload": {"json": [{"name": "ts", "alias": "ts", "cast": "TIMESTAMP"},
                                           {"name": "$.data.id", "alias": "id", "cast": "INT"}]}},
            "model": {"name": "d{id}", "using": "meters", "columns": ["ts", "id"], "tags": []}}
    (tmp_path / "p.json").write_text(json.dumps(mqtt))
    cfg = load_parser(f"@{tmp_path / 'p.json'}")
    assert cfg.form == "payload" and cfg.fields[1].name == "$.data.id"
    with pytest.raises(ConfigError, match="cannot read"):
        load_parser(f"@{tmp_path / 'nope.json'}")


def _csv(tmp: Path, text: str) -> str:
    (tmp / "in.csv").write_text(text)
    return f"csv:{tmp / 'in.csv'}"


def test_bad_value_names_file_line_and_column(tmp_path: Path) -> None:
    src = _csv(tmp_path, "id,ts,v,loc\n1,1700000000000,1.5,a\n1,1700000001000,x1,a\n2,1700000002000,2,b\n")
    parser = json.dumps({"parse": {"id": {"as": "int"}, "ts": {"as": "timestamp(ms)"},
                                   "v": {"as": "double"}}, "model": GOOD_MODEL})
    with pytest.raises(DataError) as e:
        tdetl.run(src, f"local:{tmp_path / 'bk'}", parser=parser)
    assert str(e.value) == (f"{tmp_path / 'in.csv'}:3: column 'v' value 'x1' is not a valid DOUBLE"
                            "; --on type-mismatch=<archive|drop|null> handles it")
    assert not (tmp_path / "bk" / "manifest.json").exists()


def test_drop_and_archive_policies_count_and_keep_bad_rows(tmp_path: Path) -> None:
    rows = ["id,ts,v,loc", "1,1700000000000,1.5,a", "1,1700000001000,x1,a", "2,1700000002000,2,toolong",
            "2,not-a-time,3,b", "3,1700000004000,4,c"]
    src = _csv(tmp_path, "\n".join(rows) + "\n")
    parser = json.dumps({"parse": {"id": {"as": "int"}, "ts": {"as": "timestamp(ms)"},
                                   "v": {"as": "double"}, "loc": {"as": "varchar(4)"}}, "model": GOOD_MODEL})
    drop = ErrorPolicy.parse("drop")
    for _ in range(2):  # one policy, two runs: each summary counts its own run only
        s = tdetl.run(src, f"duckdb:{tmp_path / 'drop.duckdb'}", parser=parser, on_error=drop)
        assert (s.rows_read, s.rows_written, s.rows_failed) == (5, 2, 3)
        assert len(s.skipped) == 3 and "'x1' is not a valid DOUBLE" in s.skipped[0]
    got = duckdb.connect(str(tmp_path / "drop.duckdb")).sql("SELECT tbname, v FROM m ORDER BY ts").fetchall()
    assert got == [("d1", 1.5), ("d3", 4.0)]
    archive = tmp_path / "bad.jsonl"
    tdetl.run(src, f"duckdb:{tmp_path / 'arch.duckdb'}", parser=parser, on_error=f"archive:{archive}")
    bad = [json.loads(x) for x in archive.read_text().splitlines()]
    bad.sort(key=lambda b: b["record"]["line"])
    assert [b["record"]["line"] for b in bad] == [3, 4, 5]
    assert [b["situation"] for b in bad] == ["type-mismatch", "value-too-long", "type-mismatch"]
    assert "value 'toolong' is longer than VARCHAR(4)" in bad[1]["reason"]
    assert bad[2]["record"]["ts"] == "not-a-time"


def test_config_errors_against_the_data(tmp_path: Path) -> None:
    src = _csv(tmp_path, "id,ts,v\n1,1700000000000,1\n")
    with pytest.raises(ConfigError, match="names field 'loc', which is not in the data"):
        tdetl.run(src, f"local:{tmp_path / 'a'}", parser=json.dumps({"model": GOOD_MODEL}))
    bad_first = {"name": "d{id}", "columns": ["v", "ts"]}
    with pytest.raises(ConfigError, match="first column 'v' must be a TIMESTAMP, not VARCHAR"):
        tdetl.run(src, f"local:{tmp_path / 'b'}", parser=json.dumps({"model": bad_first}))
    with pytest.raises(ConfigError, match="parser field 'nope' is not a column"):
        tdetl.run(src, f"local:{tmp_path / 'c'}",
                  parser=json.dumps({"parse": {"nope": {"as": "int"}}, "model": {"name": "x", "columns": ["ts"]}}))


def test_malformed_csv_and_missing_files(tmp_path: Path) -> None:
    src = _csv(tmp_path, 'ts,v\n1700000000000,1\n1700000001000,"unterminated\n')
    with pytest.raises((DsnError, DataError)) as e:
        tdetl.run(src, f"duckdb:{tmp_path / 'x.duckdb'}",
                  parser=json.dumps({"parse": {"ts": {"as": "timestamp(ms)"}, "v": {"as": "int"}},
                                     "model": {"name": "t", "columns": ["ts", "v"]}}))
    assert str(tmp_path / "in.csv") in str(e.value)
    with pytest.raises(DsnError, match="no such file or directory"):
        tdetl.run(f"csv:{tmp_path}/none.csv", f"local:{tmp_path / 'y'}")
    with pytest.raises(DsnError, match="no CSV files match"):
        tdetl.run(f"csv:{tmp_path}/*.nothing", f"local:{tmp_path / 'y'}")


def test_headerless_csv_without_parser_infers_types(tmp_path: Path) -> None:
    src = _csv(tmp_path, "2024-01-01 00:00:00,1,2.5,true,x\n2024-01-01T00:00:01Z,2,,false,\n")
    info = tdetl.inspect(src + "?table=plain")
    t = info["tables"][0]
    assert t["name"] == "plain" and t["rows"] == 2
    assert [c["type"] for c in t["columns"]] == ["TIMESTAMP", "BIGINT", "DOUBLE", "BOOL", "VARCHAR(1)"]
    assert [c["name"] for c in t["columns"]][:2] == ["c1", "c2"]
    assert t["time_range"] == ["2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z"]
