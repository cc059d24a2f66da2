from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from tdetl.errors import ConfigError
from tdetl.types import TDType, parse_type, type_from_arrow, type_from_id, widen


@pytest.mark.parametrize("text,expected,arrow", [
    ("TIMESTAMP(ms)", TDType("TIMESTAMP", unit="ms"), pa.timestamp("ms")),
    ("timestamp(ns)", TDType("TIMESTAMP", unit="ns"), pa.timestamp("ns")),
    ("timestamp", TDType("TIMESTAMP"), pa.timestamp("us")),  # table precision us applies
    ("VARCHAR(24)", TDType("VARCHAR", 24), pa.string()),
    ("binary", TDType("VARCHAR"), pa.string()),
    ("nchar(10)", TDType("NCHAR", 10), pa.string()),
    ("int", TDType("INT"), pa.int32()),
    ("int unsigned", TDType("INT UNSIGNED"), pa.uint32()),
    ("UBIGINT", TDType("BIGINT UNSIGNED"), pa.uint64()),
    ("bool", TDType("BOOL"), pa.bool_()),
    ("decimal(10,2)", TDType("DECIMAL", precision=10, scale=2), pa.decimal128(10, 2)),
    ("DECIMAL(38, 10)", TDType("DECIMAL", precision=38, scale=10), pa.decimal128(38, 10)),
    ("varbinary(16)", TDType("VARBINARY", 16), pa.binary()),
    ("geometry(128)", TDType("GEOMETRY", 128), pa.binary()),
    ("json", TDType("JSON"), pa.string()),
    ("blob", TDType("BLOB"), pa.binary()),
])
def test_parse_and_arrow(text: str, expected: TDType, arrow: pa.DataType) -> None:
    t = parse_type(text)
    assert t == expected
    assert t.arrow("us") == arrow
    assert parse_type(str(t)) == t


@pytest.mark.parametrize("text,match", [
    ("intt", "unknown type 'intt'"), ("varchar(x)", "positive integer"), ("int(4)", "takes no length"),
    ("timestamp(s)", "ms, us or ns"), ("decimal(40,2)", "precision must be 1..38"),
    ("varchar(70000)", "exceeds TDengine's limit"), ("", "unknown type"),
])
def test_bad_types(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_type(text, "field 'x'")


def test_golden_fields_map_to_types(golden: Path) -> None:
    """Every field taos_fetch_fields reported for the all-types table maps into the type map,
    with the raw block's schema bytes (n+2 / 4n+2 / packed decimal) derived from it."""
    case = json.loads((golden / "alltypes_ms.json").read_text())
    block = (golden / "alltypes_ms.block").read_bytes()
    fields = case["fields_from_taos_fetch_fields"]
    for i, f in enumerate(fields):
        entry = block[28 + 5 * i: 28 + 5 * i + 5]
        schema_bytes = int.from_bytes(entry[1:], "little", signed=True)
        assert entry[0] == f["type"]
        t = type_from_id(f["type"], f["bytes"])
        assert t.type_id == f["type"], f
        if f["type"] in (17, 21):
            # fetch_fields says only the width; the block's entry carries precision and scale
            assert f["bytes"] == t.fixed_width
            t = type_from_id(f["type"], schema_bytes)
            assert t.type_id == f["type"]
        assert schema_bytes == t.schema_bytes(), f
    assert str(type_from_id(21, 0x08000A02)) == "DECIMAL(10,2)"
    assert str(type_from_id(17, 0x10001E06)) == "DECIMAL(30,6)"


def test_from_arrow_and_widen() -> None:
    assert type_from_arrow(pa.large_string()) == TDType("VARCHAR")
    assert type_from_arrow(pa.timestamp("ns", tz="UTC")) == TDType("TIMESTAMP", unit="ns")
    assert widen(TDType("VARCHAR", 5), TDType("VARCHAR", 9), "c") == TDType("VARCHAR", 9)
    with pytest.raises(ConfigError, match="type changed from INT to DOUBLE"):
        widen(TDType("INT"), TDType("DOUBLE"), "c")
    with pytest.raises(ConfigError, match="no TDengine equivalent"):
        type_from_arrow(pa.list_(pa.int8()))
