"""``tdetl.query`` / ``query_batches`` / ``write`` (tdetl/frames.py) against the bundled server over
native, WebSocket and REST: every type and precision written from Arrow and read back exact, equal to
what taospy reads; queries with ORDER BY, INTERVAL, PARTITION BY, an empty result, NULL everywhere;
1 M rows with jobs=4 equal to the serial read; pandas NaN/NaT, zoned and naive timestamps, a Polars
categorical column, child-table names that need quoting; parameters that cannot escape their literal."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tdetl
from tdetl.errors import ConfigError, DataError, DsnError

from .taos_helpers import ANY, NATIVE, TRANSPORTS, pytestmark, sql, taospy_rows  # noqa: F401

COLS = ("ts TIMESTAMP, b BOOL, i1 TINYINT, i2 SMALLINT, i4 INT, i8 BIGINT, u1 TINYINT UNSIGNED, u2 SMALLINT UNSIGNED,"
        " u4 INT UNSIGNED, u8 BIGINT UNSIGNED, f FLOAT, d DOUBLE, s VARCHAR(12), n NCHAR(6), vb VARBINARY(8),"
        " g GEOMETRY(64), dec DECIMAL(12,3), t2 TIMESTAMP")
WKB_POINT = bytes.fromhex("0101000000000000000000f03f0000000000000040")  # POINT(1 2)


def _rows(unit: str) -> pa.Table:
    scale = {"ms": 1, "us": 1000, "ns": 1_000_000}[unit]
    base = 1_700_000_000_000 * scale
    return pa.table({
        "ts": pa.array([base, base + 1, base + 2], pa.timestamp(unit)),
        "b": [True, False, None], "i1": pa.array([-128, 127, None], pa.int8()),
        "i2": pa.array([-32768, 32767, None], pa.int16()), "i4": pa.array([-2**31, 2**31 - 1, None], pa.int32()),
        "i8": pa.array([-2**63, 2**63 - 1, None], pa.int64()), "u1": pa.array([0, 255, None], pa.uint8()),
        "u2": pa.array([0, 65535, None], pa.uint16()), "u4": pa.array([0, 2**32 - 1, None], pa.uint32()),
        "u8": pa.array([0, 2**64 - 1, None], pa.uint64()), "f": pa.array([1.5, -0.25, None], pa.float32()),
        "d": [2.25, -1e300, None], "s": ["abc", "", None], "n": ["ü界", "", None],
        "vb": pa.array([b"\x01\x02", b"", None], pa.binary()), "g": pa.array([WKB_POINT, WKB_POINT, None], pa.binary()),
        "dec": pa.array([Decimal("-123456789.123"), Decimal("0.001"), None], pa.decimal128(12, 3)),
        "t2": pa.array([base + 5, None, base], pa.timestamp(unit)),
        "dev": ["c1", "c1", "c1"], "site": ['{"k":"v"}'] * 3})


@pytest.mark.parametrize("unit", ["ms", "us", "ns"])
def test_every_type_round_trips_write_then_query_on_every_transport(scratch: Any, unit: str) -> None:
    db = scratch("tdetl_fr")
    sql(ANY, f"CREATE DATABASE {db} PRECISION '{unit}'", f"CREATE STABLE {db}.st ({COLS}) TAGS (site JSON)")
    data = _rows(unit)
    for target in TRANSPORTS:  # every transport writes (the same rows again: kept once)
        s = tdetl.write(data, f"{target}/{db}", stable="st", table="dev", tags=["site"], create=False)
        assert (s.rows_written, s.rows_failed) == (3, 0)
    want = taospy_rows(db, "SELECT CAST(ts AS BIGINT), b, i1, i2, i4, i8, u1, u2, u4, u8, f, d, s, n, vb,"
                           " CAST(dec AS VARCHAR(20)), CAST(t2 AS BIGINT) FROM st ORDER BY ts")
    assert len(want) == 3
    for source in TRANSPORTS:
        got = tdetl.query(f"{source}/{db}", "SELECT * FROM st ORDER BY ts")
        assert got.schema.field("ts").type == pa.timestamp(unit, "UTC")
        assert got.schema.field("dec").type == pa.decimal128(12, 3)
        epochs = got.set_column(0, "ts", got.column("ts").cast(pa.int64())).set_column(
            17, "t2", got.column("t2").cast(pa.int64()))
        rows = [tuple(r.values()) for r in epochs.to_pylist()]
        as_taospy = [(*r[0:15], None if r[16] is None else str(r[16]), r[17]) for r in rows]
        assert as_taospy == want, source
        assert [r[15] for r in rows] == [WKB_POINT, WKB_POINT, None]  # GEOMETRY as WKB
        assert [json.loads(r[18]) for r in rows] == [{"k": "v"}] * 3  # the JSON tag as text
        assert got.column("dec").to_pylist()[:2] == [Decimal("-123456789.123"), Decimal("0.001")]


@pytest.fixture(scope="module")
def meters() -> Any:
    """10 child tables x 100 rows in ms, one NULL-only row, read by every query test."""
    from .taos_helpers import drop, scratch_name

    db = scratch_name("tdetl_frq")
    sql(ANY, f"CREATE DATABASE {db}", f"CREATE STABLE {db}.meters (ts TIMESTAMP, current FLOAT, voltage INT)"
        " TAGS (location VARCHAR(16), groupid INT)")
    frame = pl.DataFrame({"ts": pl.datetime_range(datetime(2024, 1, 1), datetime(2024, 1, 1, 0, 0, 0, 999_000),
                                                  "1ms", eager=True).head(100).to_list() * 10,
                          "current": [float(i % 7) for i in range(1000)], "voltage": list(range(1000)),
                          "tb": [f"d{i // 100}" for i in range(1000)],
                          "location": [f"L{i // 200}" for i in range(1000)],
                          "groupid": [i // 300 for i in range(1000)]})
    tdetl.write(frame, f"{ANY}/{db}", stable="meters", table="tb", tags=["location", "groupid"])
    sql(ANY, f"INSERT INTO {db}.allnull USING {db}.meters TAGS (NULL, NULL) VALUES (1704067300000, NULL, NULL)")
    yield db
    drop(db)


@pytest.mark.parametrize("source", TRANSPORTS or ["unset"])
def test_queries_of_every_shape_equal_taospy(meters: str, source: str) -> None:
    db = meters
    for q in ("SELECT tbname, ts, current, voltage FROM meters ORDER BY ts DESC, tbname",
              "SELECT _wstart, COUNT(*), AVG(voltage) FROM meters INTERVAL(10a)",
              "SELECT tbname, MAX(voltage) FROM meters PARTITION BY tbname ORDER BY tbname"):
        got = tdetl.query(f"{source}/{db}", q)
        want = taospy_rows(db, q)
        assert len(got) == len(want) > 0, q
        rest = [c.to_pylist() for c in got.columns][1:]  # the rest of the columns, compared as values
        assert [_plain(r[1:]) for r in want] == [_plain(v) for v in zip(*rest)], q
    empty = tdetl.query(f"{source}/{db}", "SELECT * FROM meters WHERE voltage < 0")
    assert empty.num_rows == 0 and empty.column_names == ["ts", "current", "voltage", "location", "groupid"]
    nulls = tdetl.query(f"{source}/{db}", "SELECT * FROM allnull")
    assert nulls.num_rows == 1 and all(nulls.column(c).null_count == 1 for c in nulls.column_names[1:])


def _plain(values: Any) -> list[Any]:
    """Instants as epoch seconds: taospy gives naive local times, tdetl.query UTC-aware ones."""
    return [v.timestamp() if isinstance(v, datetime) else v for v in values]


def test_jobs_split_by_child_table_and_keep_the_order(scratch: Any) -> None:
    db = scratch("tdetl_frj")
    n = 1_000_000
    frame = pl.DataFrame({"ts": (pl.Series(range(n), dtype=pl.Int64) + 1_704_067_200_000).cast(pl.Datetime("ms")),
                          "v": pl.Series(range(n), dtype=pl.Int64), "tb": [f"t{i % 40}" for i in range(n)]})
    frame = frame.with_columns(pl.col("tb").alias("grp"))
    with pytest.raises(ConfigError, match="needs at least one tag"):
        tdetl.write(frame, f"{ANY}/{db}?assert", stable="big", table="tb")
    tdetl.write(frame, f"{ANY}/{db}?assert", stable="big", table="tb", tags=["grp"])
    q = "SELECT tbname, ts, v FROM big WHERE v >= 10 ORDER BY ts"
    serial = tdetl.query(f"{ANY}/{db}", q)
    parallel = tdetl.query(f"{ANY}/{db}", q, jobs=4)
    assert serial.num_rows == parallel.num_rows == n - 10
    assert parallel.equals(serial)
    assert tdetl.query(f"{ANY}/{db}", "SELECT v FROM big", jobs=4).column("v").to_pylist().__len__() == n


def test_pandas_nan_nat_zones_and_names_that_need_quoting(scratch: Any) -> None:
    db = scratch("tdetl_frp")
    sql(ANY, f"CREATE DATABASE {db} PRECISION 'ms'")  # pandas' us (or ns) instants go into ms
    df = pd.DataFrame({"ts": pd.to_datetime(["2024-01-01 08:00:00", "2024-01-01 08:00:01", None]),
                       "v": [1.5, float("nan"), 3.0], "dev": ["Zähler 1", "o'brien", "o'brien"], "site": "n"})
    with pytest.raises(DataError, match="ts-null"):  # NaT in the primary key: --on ts-null decides
        tdetl.write(df, f"{ANY}/{db}", stable="m", table="dev", tags=["site"])
    s = tdetl.write(df, f"{ANY}/{db}", stable="m", table="dev", tags=["site"], on={"ts-null": "drop"})
    assert (s.rows_written, s.outcomes) == (2, {"ts-null dropped": 1})
    naive = taospy_rows(db, "SELECT tbname, CAST(ts AS BIGINT), v FROM m ORDER BY ts")
    assert naive == [("Zähler 1", 1704096000000, 1.5), ("o'brien", 1704096001000, None)]  # naive = UTC; NaN = NULL
    zoned = pd.DataFrame({"ts": pd.to_datetime(["2024-01-01 08:00:00"]).tz_localize("Asia/Shanghai"), "v": [9.0],
                          "dev": ["Zähler 1"], "site": "n"})
    tdetl.write(zoned, f"{ANY}/{db}", stable="m", table="dev", tags=["site"])  # 08:00 in Shanghai is 00:00 UTC
    assert taospy_rows(db, "SELECT CAST(ts AS BIGINT), v FROM m WHERE v = 9") == [(1704067200000, 9.0)]


def test_polars_categoricals_lazyframes_and_refusals(scratch: Any) -> None:
    db = scratch("tdetl_frc")
    lf = pl.LazyFrame({"ts": [datetime(2024, 1, 1, tzinfo=timezone.utc)] * 2, "kind": ["a", "b"],
                       "tb": ["x", "y"], "v": [1, 2]}).with_columns(pl.col("kind").cast(pl.Categorical))
    with pytest.raises(ConfigError, match="a column besides its timestamp"):
        tdetl.write(lf.drop("v"), f"{ANY}/{db}?assert", stable="c", table="tb", tags=["kind"])
    tdetl.write(lf, f"{ANY}/{db}?assert", stable="c", table="tb", tags=["kind"])
    assert sorted(taospy_rows(db, "SELECT tbname, kind FROM c")) == [("x", "a"), ("y", "b")]
    with pytest.raises(DsnError, match="'absent' does not exist and create=False"):
        tdetl.write(lf, f"{ANY}/{db}", stable="absent", table="tb", create=False)
    with pytest.raises(ConfigError, match="name the child tables"):
        tdetl.write(lf, f"{ANY}/{db}", stable="c")
    with pytest.raises(ConfigError, match="not a column"):
        tdetl.write(lf, f"{ANY}/{db}", stable="c", table="tb", tags=["nope"])
    with pytest.raises(ConfigError, match="takes Arrow data"):
        tdetl.write([1, 2], f"{ANY}/{db}", table="t")
    with pytest.raises(DsnError, match="query reads TDengine"):
        tdetl.query("csv:/tmp/x.csv", "SELECT 1")
    with pytest.raises(ConfigError, match="more \\? than"):
        tdetl.query(ANY, "SELECT ?, ?", params=[1])


@settings(max_examples=40, deadline=None)
@given(value=st.one_of(st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
                               max_size=40), st.integers(-2**63, 2**63 - 1), st.booleans(), st.none()))
def test_any_parameter_stays_one_literal(value: Any) -> None:
    """Whatever a parameter holds, the server sees one literal and gives it back."""
    got = tdetl.query(ANY, "SELECT ? AS v", params=[value]).column("v").to_pylist()[0]
    assert got == value or (isinstance(value, bool) and got == value) or (value is None and got is None)
