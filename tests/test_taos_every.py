"""``taos://host:port`` with no database (as ``taosdump -A``): every database of the server backed
up into one backup and restored into its namesakes (a sync of a whole server is the two together), checked with
taospy on a TDengine of the test's own (the shared one holds every other test's databases)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import tdetl
from tdetl.dsn import parse_dsn
from tdetl.errors import DsnError

from .taos_helpers import Bundle, pytestmark, sql  # noqa: F401

ROWS = {"e_ms": 300, "e_us": 200}


def _taospy(server: str, query: str) -> list[tuple[Any, ...]]:
    taos = pytest.importorskip("taos")
    d = parse_dsn(server)
    conn = taos.connect(host=d.host, port=d.port, user=d.user, password=d.password)
    try:
        return list(conn.query(query).fetch_all())
    finally:
        conn.close()


def _fill(server: str) -> None:
    sql(server, "CREATE DATABASE e_ms PRECISION 'ms'", "CREATE DATABASE e_us PRECISION 'us'",
        "CREATE STABLE e_ms.meters (ts TIMESTAMP, v DOUBLE) TAGS (site VARCHAR(8))",
        "CREATE TABLE e_us.plain (ts TIMESTAMP, n INT)")
    for i in range(3):
        values = " ".join(f"({1_700_000_000_000 + k}, {k / 4})" for k in range(100))
        sql(server, f"INSERT INTO e_ms.d{i} USING e_ms.meters TAGS ('s{i}') VALUES {values}")
    values = " ".join(f"({1_700_000_000_000_000 + k}, {k})" for k in range(200))  # microseconds kept
    sql(server, f"INSERT INTO e_us.plain VALUES {values}")


def _counts(server: str) -> dict[str, int]:
    return {"e_ms": _taospy(server, "SELECT COUNT(*) FROM e_ms.meters")[0][0],
            "e_us": _taospy(server, "SELECT COUNT(*) FROM e_us.plain")[0][0]}


def test_every_database_backed_up_and_restored_into_its_namesakes(bundle: Bundle, tmp_path: Path) -> None:
    env = bundle.start()
    server = env["TDETL_TEST_TAOS"].rstrip("/")
    _fill(server)
    backup = tmp_path / "all"
    first = tdetl.run(server, f"local:{backup}")
    assert first.rows_written == sum(ROWS.values()) and first.tables == 4
    manifest = json.loads((backup / "manifest.json").read_text())
    assert sorted(d["name"] for d in manifest["databases"]) == ["e_ms", "e_us"]
    before = _taospy(server, "SELECT CAST(ts AS BIGINT), n FROM e_us.plain ORDER BY ts LIMIT 3")
    sql(server, "DROP DATABASE e_ms", "DROP DATABASE e_us")
    restored = tdetl.run(f"local:{backup}", f"{server}?assert")  # every database into its namesake
    assert restored.rows_written == sum(ROWS.values())
    assert _counts(server) == ROWS
    assert _taospy(server, "SELECT CAST(ts AS BIGINT), n FROM e_us.plain ORDER BY ts LIMIT 3") == before
    assert _taospy(server, "SELECT `precision` FROM information_schema.ins_databases WHERE name = 'e_us'") == \
        [("us",)]
    assert sorted(_taospy(server, "SELECT DISTINCT site FROM e_ms.meters")) == [("s0",), ("s1",), ("s2",)]
    for db in ROWS:
        assert tdetl.verify(f"{server}/{db}", f"local:{backup}?stables=meters" if db == "e_ms" else
                            f"local:{backup}?tables=plain")["differences"] == [], db


def test_every_database_refuses_what_reads_one(tmp_path: Path) -> None:
    for dsn in ("taos://h:6030?stables=a", "taos://h:6030?tables=t", "taos://h:6030?mode=realtime"):
        with pytest.raises(DsnError, match="read one database: name it"):
            tdetl.run(dsn, f"local:{tmp_path / 'x'}")
