"""Many small child tables are read in groups (tdetl/drivers/taos/source.py): every row arrives
exactly once, the groups follow from the names alone, and large tables keep a partition each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tdetl
from tdetl.drivers import open_source
from tdetl.drivers.taos.source import GROUP_TABLES
from tdetl.dsn import parse_dsn
from tdetl.options import Options

from .taos_helpers import ANY, pytestmark, sql, taospy_rows  # noqa: F401


def _small(db: str, tables: int, rows: int) -> None:
    sql(ANY, f"CREATE DATABASE `{db}`", f"CREATE STABLE `{db}`.m (ts TIMESTAMP, v INT, s NCHAR(8)) TAGS (g INT)",
        f"CREATE STABLE `{db}`.big (ts TIMESTAMP, v INT) TAGS (g INT)",
        f"CREATE TABLE `{db}`.n0 (ts TIMESTAMP, v INT)")
    for first in range(0, tables, 200):
        clauses = " ".join(
            f"`{db}`.`d{t}` USING `{db}`.m TAGS ({t}) VALUES "
            + " ".join(f"({1_700_000_000_000 + r}, {t * 1000 + r}, 'ü{r}')" for r in range(rows))
            for t in range(first, min(tables, first + 200)))
        sql(ANY, f"INSERT INTO {clauses}")
    sql(ANY, f"INSERT INTO `{db}`.b0 USING `{db}`.big TAGS (1) VALUES (1700000000000, 1) (1700000000001, 2)",
        f"INSERT INTO `{db}`.n0 VALUES (1700000000000, 7)")


def _partitions(db: str, spread: bool = False) -> list[str]:
    src = open_source(parse_dsn(f"{ANY}/{db}"), Options())
    try:
        return src.spread_partitions() if spread else src.partitions()
    finally:
        src.close()


def _content(db: str) -> list[tuple[Any, ...]]:
    return sorted(taospy_rows(db, "SELECT tbname, g, CAST(ts AS BIGINT), v, s FROM m"))


def test_small_child_tables_are_read_in_stable_groups_and_every_row_arrives_once(scratch: Any,
                                                                               tmp_path: Path) -> None:
    src, dst = scratch("tdetl_grp"), scratch("tdetl_grp2")
    tables = 600  # more than one query's IN list (500): two groups
    _small(src, tables, 4)
    parts = _partitions(src)
    assert sorted(parts) == ["g:m:0/2", "g:m:1/2", "t:b0", "t:n0"]  # big has one child: a partition of its own
    spread = [p for p in _partitions(src, spread=True) if p.startswith("g:")]  # a cluster's shares
    assert sorted(spread) == sorted(f"g:m:{i}/16" for i in range(16))
    summary = tdetl.run(f"{ANY}/{src}", f"local:{tmp_path / 'bk'}")
    assert summary.rows_written == tables * 4 + 3 and summary.tables == tables + 2
    tdetl.run(f"local:{tmp_path / 'bk'}", f"{ANY}/{dst}?assert")
    got = _content(dst)
    assert len(got) == tables * 4 and got == _content(src)
    assert sorted(taospy_rows(dst, "SELECT CAST(ts AS BIGINT), v FROM b0")) == [(1700000000000, 1), (1700000000001, 2)]
    # a table added later joins the group its name hashes to; the groups keep their names
    sql(ANY, f"INSERT INTO `{src}`.`late` USING `{src}`.m TAGS (9) VALUES (1700000000000, 1, 'x')")
    assert sorted(_partitions(src)) == sorted(parts)
    again = tdetl.run(f"{ANY}/{src}", f"local:{tmp_path / 'bk2'}")
    assert again.rows_written == tables * 4 + 4


def test_few_or_large_child_tables_keep_a_partition_each(scratch: Any) -> None:
    db = scratch("tdetl_grp3")
    _small(db, GROUP_TABLES - 1, 2)
    assert sum(p.startswith("t:d") for p in _partitions(db)) == GROUP_TABLES - 1
