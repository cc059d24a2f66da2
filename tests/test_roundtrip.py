"""CSV -> local backup -> DuckDB / Parquet / CSV gives back every value exactly."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import tdetl

UNIT = {"ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}

COLUMNS = [
    ("ts", "TIMESTAMP({p})"), ("c_bool", "BOOL"), ("c_i8", "TINYINT"), ("c_i16", "SMALLINT"),
    ("c_i32", "INT"), ("c_i64", "BIGINT"), ("c_u8", "TINYINT UNSIGNED"), ("c_u16", "SMALLINT UNSIGNED"),
    ("c_u32", "INT UNSIGNED"), ("c_u64", "BIGINT UNSIGNED"), ("c_f32", "FLOAT"), ("c_f64", "DOUBLE"),
    ("c_vc", "VARCHAR(20)"), ("c_nc", "NCHAR(10)"), ("c_vb", "VARBINARY(16)"), ("c_geo", "GEOMETRY(64)"),
    ("c_d64", "DECIMAL(10,2)"), ("c_d128", "DECIMAL(30,6)"),
]
TAGS = [("t_id", "INT"), ("t_name", "NCHAR(16)"), ("t_json", "JSON")]

ROWS: list[list[Any]] = [
    # offset s, bool, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64, vc, nc, vb, geo, d64, d128
    [0, True, 1, 2, 3, 4, 5, 6, 7, 8, 1.5, 2.25, "hello", "中文abc", b"\x01\x02",
     bytes.fromhex("0101000000000000000000f03f0000000000000040"), Decimal("12.34"),
     Decimal("123456789012345678.123456")],
    [1] + [None] * 17,
    [2, False, -128, -32768, -(2**31), -(2**63), 0, 0, 0, 0, -3.4028234663852886e38, -1.7976931348623157e308,
     "", "", b"", bytes.fromhex("01020000000200000000000000000000000000000000000000000000000000f03f000000000000f03f"),
     Decimal("-99999999.99"), Decimal("-999999999999999999999999.999999")],
    [3, True, 127, 32767, 2**31 - 1, 2**63 - 1, 255, 65535, 2**32 - 1, 2**64 - 1, 0.1, 0.1,
     "a,b \"quoted\"", "emoji 😀✓", b"\xff\x00\xfe", None, Decimal("0.01"), Decimal("0.000001")],
]


def _text(v: Any, t: str) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, bytes):
        return "\\x" + v.hex()
    if isinstance(v, float):
        return repr(float(np.float32(v))) if t == "FLOAT" else repr(v)
    if isinstance(v, str):
        return '"' + v.replace('"', '""') + '"'
    return str(v)


def expected_rows(precision: str) -> list[dict[str, Any]]:
    """What must come back: every value as Python sees it, timestamps as epoch integers."""
    out = []
    base = 1_700_000_000 * UNIT[precision]
    for table in range(2):
        for r in ROWS:
            row = {"tbname": f"dev{table}", "t_id": table, "t_name": f"设备{table}",
                   "t_json": json.dumps({"k": table, "s": "x,y"})}
            vals = [base + r[0] * UNIT[precision] + (123 if precision != "ms" else 7), *r[1:]]
            for (name, t), v in zip(COLUMNS, vals):
                if t == "FLOAT" and v is not None:
                    v = float(np.float32(v))
                row[name] = v
            out.append(row)
    return out


def write_csv(path: Path, precision: str) -> str:
    header = ["tbname", "t_id", "t_name", "t_json"] + [c for c, _ in COLUMNS]
    lines = [",".join(header)]
    for i, row in enumerate(expected_rows(precision)):
        cells = []
        for name in header:
            t = dict(COLUMNS + TAGS).get(name, "VARCHAR")
            v = row[name]
            if name == "ts" and i % 2 == 1:  # half the timestamps as RFC 3339 text with a zone
                sec, frac = divmod(v, UNIT[precision])
                digits = len(str(UNIT[precision])) - 1
                iso = np.datetime64(sec, "s").astype(str)
                cells.append(f"{iso}.{frac:0{digits}d}+00:00")
                continue
            cells.append(_text(v, t.split("(")[0]))
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    parser = {
        "parse": {**{c: {"as": t.format(p=precision)} for c, t in COLUMNS},
                  **{c: {"as": t} for c, t in TAGS}},
        "model": {"name": "${tbname}", "using": "alltypes", "tags": [t for t, _ in TAGS],
                  "columns": [c for c, _ in COLUMNS]},
    }
    return json.dumps(parser)


def normalise(table: pa.Table) -> list[dict[str, Any]]:
    cols = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        if pa.types.is_large_binary(col.type) or pa.types.is_binary_view(col.type):
            col = col.cast(pa.binary())
        cols[name] = col
    rows = pa.table(cols).to_pylist()
    return sorted(rows, key=lambda r: (r["tbname"], r["ts"]))


@pytest.fixture(params=["ms", "us", "ns"])
def backup(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    precision = request.param
    parser = write_csv(tmp_path / "alltypes.csv", precision)
    summary = tdetl.run(f"csv:{tmp_path / 'alltypes.csv'}", f"local:{tmp_path / 'bk'}", parser=parser)
    assert summary.rows_written == len(expected_rows(precision))
    return precision, tmp_path


def test_duckdb_round_trip(backup: tuple[str, Path]) -> None:
    precision, tmp = backup
    tdetl.run(f"local:{tmp / 'bk'}", f"duckdb:{tmp / 'out.duckdb'}")
    con = duckdb.connect(str(tmp / "out.duckdb"))
    got = con.sql("SELECT * FROM alltypes").to_arrow_table()
    # DuckDB's own TIMESTAMP (us) for ms/us, TIMESTAMP_NS for ns: what its functions take
    assert got.schema.field("ts").type == pa.timestamp("ns" if precision == "ns" else "us")
    assert normalise(_in_precision(got, precision)) == expected_rows(precision)
    # epoch_ms() fails on TIMESTAMP_NS in DuckDB 2.0 (its bug, noted in the backup guide); epoch_ns() works there
    epoch = "epoch_ns(ts) // 1000000" if precision == "ns" else "epoch_ms(ts)"
    ms = [r[0] for r in con.sql(f"SELECT {epoch} FROM alltypes ORDER BY tbname, ts").fetchall()]
    assert ms == [r["ts"] * 1000 // UNIT[precision] for r in sorted(expected_rows(precision),
                                                                  key=lambda r: (r["tbname"], r["ts"]))]
    buckets = con.sql("SELECT count(DISTINCT time_bucket(INTERVAL 1 hour, ts)),"
                      " count(DISTINCT date_trunc('day', ts)) FROM alltypes").fetchall()
    assert buckets == [(1, 1)]


def _in_precision(table: pa.Table, precision: str) -> pa.Table:
    """Timestamps back in the source precision (a lossy cast would raise)."""
    i = table.schema.get_field_index("ts")
    return table.set_column(i, "ts", table.column(i).cast(pa.timestamp(precision)))


def test_parquet_round_trip(backup: tuple[str, Path]) -> None:
    precision, tmp = backup
    tdetl.run(f"local:{tmp / 'bk'}", f"parquet:{tmp / 'pq'}")
    got = pq.read_table(tmp / "pq" / "alltypes.parquet")
    assert got.schema.field("ts").type == pa.timestamp(precision)
    assert normalise(got) == expected_rows(precision)


def test_csv_round_trip(backup: tuple[str, Path]) -> None:
    """local -> CSV (one file, tbname column) -> local again -> DuckDB equals the original."""
    precision, tmp = backup
    tdetl.run(f"local:{tmp / 'bk'}", f"csv:{tmp / 'export.csv'}")
    parser = json.loads(write_csv(tmp / "unused.csv", precision))
    tdetl.run(f"csv:{tmp / 'export.csv'}", f"local:{tmp / 'bk2'}", parser=json.dumps(parser))
    tdetl.run(f"local:{tmp / 'bk2'}", f"duckdb:{tmp / 'again.duckdb'}")
    got = duckdb.connect(str(tmp / "again.duckdb")).sql("SELECT * FROM alltypes").to_arrow_table()
    assert normalise(_in_precision(got, precision)) == expected_rows(precision)


def test_csv_per_table_export(backup: tuple[str, Path]) -> None:
    _precision, tmp = backup
    tdetl.run(f"local:{tmp / 'bk'}", f"csv:{tmp / 'tables'}/")
    files = sorted(p.name for p in (tmp / "tables").iterdir())
    assert files == ["dev0.csv", "dev1.csv"]
    text = (tmp / "tables" / "dev0.csv").read_text(encoding="utf-8").splitlines()
    assert text[0].split(",")[:3] == ["t_id", "t_name", "t_json"]
    assert len(text) == 1 + len(ROWS)
    assert ',"",' in text[3]  # the empty VARCHAR stays an empty string, not a null


def test_gzip_csv_source_and_inspect(tmp_path: Path) -> None:
    import gzip

    parser = write_csv(tmp_path / "a.csv", "ms")
    with open(tmp_path / "a.csv", "rb") as src, gzip.open(tmp_path / "a.csv.gz", "wb") as dst:
        dst.write(src.read())
    (tmp_path / "a.csv").unlink()
    info = tdetl.inspect(f"csv:{tmp_path / 'a.csv.gz'}", parser=parser)
    assert info["rows"] == len(expected_rows("ms"))
    dev0 = next(t for t in info["tables"] if t["name"] == "dev0")
    assert dev0["rows"] == len(ROWS) and dev0["stable"] == "alltypes"
    assert dev0["min_ts"] == 1_700_000_000_007 and dev0["max_ts"] == 1_700_000_003_007
