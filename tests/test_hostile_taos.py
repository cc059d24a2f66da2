"""Hostile inputs on the TDengine side (issue 25): schemas and values that used to break a run or
change data while it exited 0. Each result is read back with taospy, not only with our reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import tdetl

from .taos_helpers import SERVERS, TRANSPORTS, pytestmark, sql, taospy_rows  # noqa: F401 - TDengine suites


@pytest.mark.parametrize("precision,tag", [("ms", 1625068800000), ("ns", 1625068800000000123)])
@pytest.mark.parametrize("transport", TRANSPORTS or ["unset"])
def test_timestamp_tags_survive_backup_restore_and_sync(scratch: Any, tmp_path: Path, precision: str, tag: int,
                                                        transport: str) -> None:
    src, back, synced = scratch("tdetl_tt"), scratch("tdetl_tt2"), scratch("tdetl_tt3")
    server = SERVERS[0]
    sql(server, f"CREATE DATABASE {src} PRECISION '{precision}'",
        f"CREATE STABLE {src}.st (ts TIMESTAMP, v INT) TAGS (tt TIMESTAMP, n INT)",
        f"INSERT INTO {src}.c1 USING {src}.st TAGS ({tag}, 1) VALUES ({tag}, 1)",
        f"INSERT INTO {src}.c2 USING {src}.st TAGS (NULL, 2) VALUES ({tag}, 2)")
    tdetl.run(f"{transport}/{src}", f"local:{tmp_path / 'bk'}")
    tdetl.run(f"local:{tmp_path / 'bk'}", f"{transport}/{back}?assert")
    tdetl.run(f"{transport}/{src}", f"{transport}/{synced}?assert")
    want = [("c1", tag), ("c2", None)]
    for db in (src, back, synced):
        assert sorted(taospy_rows(db, "SELECT tbname, CAST(tt AS BIGINT) FROM st")) == want, db
    assert tdetl.verify(f"{transport}/{src}", f"{transport}/{back}")["differences"] == []


@pytest.mark.parametrize("choice", ["default", "error", "drop-field"])
@pytest.mark.parametrize("transport", TRANSPORTS or ["unset"])
def test_existing_tables_that_lack_a_source_column(scratch: Any, choice: str, transport: str) -> None:
    """A normal table (missing column in the middle and last) and a super table that lack a column of
    the source: added by default (schema travels with a sync), refused or dropped as chosen; never
    a value shifted into the next column nor a column dropped silently."""
    src, dst = scratch("tdetl_nt"), scratch("tdetl_nt2")
    server = SERVERS[0]
    sql(server, f"CREATE DATABASE {src}", f"CREATE DATABASE {dst}",
        f"CREATE TABLE {src}.mid (ts TIMESTAMP, a INT, b INT, c INT)",
        f"INSERT INTO {src}.mid VALUES (1700000000000, 1, 2, 3)",
        f"CREATE TABLE {src}.lst (ts TIMESTAMP, a INT, b INT)", f"INSERT INTO {src}.lst VALUES (1700000000000, 1, 2)",
        f"CREATE STABLE {src}.st (ts TIMESTAMP, a INT, b INT, c INT) TAGS (g INT)",
        f"INSERT INTO {src}.s1 USING {src}.st TAGS (7) VALUES (1700000000000, 1, 2, 3)",
        f"CREATE TABLE {dst}.mid (ts TIMESTAMP, a INT, c INT)", f"CREATE TABLE {dst}.lst (ts TIMESTAMP, a INT)",
        f"CREATE STABLE {dst}.st (ts TIMESTAMP, a INT, c INT) TAGS (g INT)")
    on = [] if choice == "default" else [f"field-not-in-stable={choice}"]
    if choice == "error":
        with pytest.raises(tdetl.errors.DataError, match="'b' not in"):
            tdetl.run(f"{transport}/{src}", f"{transport}/{dst}", on=on)
        assert taospy_rows(dst, "SELECT COUNT(*) FROM mid") == [(0,)]
        assert taospy_rows(dst, "SELECT COUNT(*) FROM st") == [(0,)]
        return
    summary = tdetl.run(f"{transport}/{src}", f"{transport}/{dst}", on=on)
    if choice == "default":
        assert taospy_rows(dst, "SELECT a, b, c FROM mid") == [(1, 2, 3)]
        assert taospy_rows(dst, "SELECT a, b FROM lst") == [(1, 2)]
        assert taospy_rows(dst, "SELECT a, b, c, g FROM st") == [(1, 2, 3, 7)]
    else:
        assert taospy_rows(dst, "SELECT * FROM mid") == [(taospy_rows(dst, "SELECT ts FROM mid")[0][0], 1, 3)]
        assert [r[1:] for r in taospy_rows(dst, "SELECT * FROM lst")] == [(1,)]
        assert taospy_rows(dst, "SELECT a, c, g FROM st") == [(1, 3, 7)]
        assert summary.outcomes == {"field-not-in-stable dropped fields of": 3}


@pytest.mark.parametrize("choice", ["default", "null", "drop", "archive"])
def test_tags_the_server_cannot_keep_are_a_situation(scratch: Any, tmp_path: Path, choice: str) -> None:
    """NaN or infinity in a FLOAT tag used to be stored as NULL with exit 0; a NUL in a text tag
    stopped the run with a syntax error no --on choice handled."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    nan = float("nan")
    rows = {"tbname": ["ok", "nan", "inf", "nul"], "ts": [1_700_000_000_000 + i for i in range(4)],
            "v": [1, 2, 3, 4], "g": [1.5, nan, float("inf"), 2.5], "loc": ["a", "b", "c", "x\x00y"]}
    table = pa.table(rows)
    table = table.set_column(1, "ts", table.column("ts").cast(pa.timestamp("ms")))
    pq.write_table(table, tmp_path / "in.parquet")
    model = {"model": {"name": "{tbname}", "using": "st", "tags": ["g", "loc"], "columns": ["ts", "v"]}}
    db = scratch("tdetl_tg")
    target = f"{SERVERS[0]}/{db}?assert"
    on = [] if choice == "default" else [f"tag-invalid={choice}", f"archive={tmp_path / 'arch'}"]
    if choice == "default":
        with pytest.raises(tdetl.errors.DataError, match=r"table 'nan': tag 'g' = nan cannot be kept"):
            tdetl.run(f"parquet:{tmp_path / 'in.parquet'}", target, parser=json.dumps(model), on=on)
        return
    s = tdetl.run(f"parquet:{tmp_path / 'in.parquet'}", target, parser=json.dumps(model), on=on)
    got = sorted(taospy_rows(db, "SELECT tbname, v, g, loc FROM st"))
    if choice == "null":
        assert got == [("inf", 3, None, "c"), ("nan", 2, None, "b"), ("nul", 4, 2.5, None), ("ok", 1, 1.5, "a")]
        assert s.outcomes == {"tag-invalid nulled": 3} and s.rows_written == 4
    else:
        assert got == [("ok", 1, 1.5, "a")] and s.rows_written == 1 and s.rows_failed == 3
    if choice == "archive":
        kept = [json.loads(x) for f in (tmp_path / "arch").glob("*.jsonl") for x in f.read_text().splitlines()]
        assert sorted(k["record"]["table"] for k in kept) == ["inf", "nan", "nul"]
