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
