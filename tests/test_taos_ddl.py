from __future__ import annotations

from decimal import Decimal

import pytest

from tdetl.errors import ConfigError
from tdetl.model import Column, SuperTable, TableSpec
from tdetl.taos import ddl
from tdetl.types import parse_type


def _st() -> SuperTable:
    cols = (Column("ts", parse_type("TIMESTAMP(ms)")), Column("current", parse_type("FLOAT")),
            Column("note", parse_type("NCHAR(8)")))
    tags = (Column("groupid", parse_type("INT")), Column("location", parse_type("VARCHAR(24)")),
            Column("raw", parse_type("VARBINARY(4)")))
    return SuperTable("db", "meters", cols, tags)


def test_stable_and_child_tables() -> None:
    st = _st()
    assert ddl.create_stable(st) == (
        "CREATE STABLE IF NOT EXISTS `meters` (`ts` TIMESTAMP, `current` FLOAT, `note` NCHAR(8))"
        " TAGS (`groupid` INT, `location` VARCHAR(24), `raw` VARBINARY(4))")
    spec = TableSpec("d'1", st.columns, "db", "meters", st.tags, (7, "Cali'fornia\\x", b"\x01\xff"))
    assert ddl.child_clause(spec, st) == (
        "IF NOT EXISTS `d'1` USING `meters` (`groupid`, `location`, `raw`)"
        " TAGS (7, 'Cali\\'fornia\\\\x', '\\x01ff')")


def test_child_tables_are_batched_under_max_sql_length() -> None:
    clauses = [f"IF NOT EXISTS `t{i}` USING `m` (`g`) TAGS ({i})" for i in range(1000)]
    stmts = list(ddl.create_child_tables(clauses, max_sql=4096))
    assert len(stmts) > 1 and all(len(s.encode()) <= 4096 for s in stmts)
    assert sum(s.count("IF NOT EXISTS") for s in stmts) == 1000
    assert stmts[0].startswith("CREATE TABLE IF NOT EXISTS `t0` USING")


def test_literals_database_and_widening() -> None:
    assert ddl.literal(parse_type("BOOL"), True) == "true"
    assert ddl.literal(parse_type("DOUBLE"), 0.1) == "0.1"
    assert ddl.literal(parse_type("DECIMAL(10,2)"), Decimal("1.50")) == "1.50"
    assert ddl.literal(parse_type("INT"), None) == "NULL"
    assert ddl.literal(parse_type("JSON"), '{"k":"v"}') == "'{\"k\":\"v\"}'"
    assert ddl.create_database("db", {"keep": "3650d", "vgroups": 2, "bogus": 1}, "us") == (
        "CREATE DATABASE IF NOT EXISTS `db` KEEP 3650d VGROUPS 2 PRECISION 'us'")
    with pytest.raises(ConfigError, match="is not a plain value"):
        ddl.create_database("db", {"keep": "1; DROP DATABASE x"}, None)
    old = _st()
    wider = SuperTable("db", "meters", (*old.columns[:2], Column("note", parse_type("NCHAR(20)"))),
                       (*old.tags, Column("site", parse_type("VARCHAR(5)"))))
    assert ddl.alter_widths("meters", old, wider) == [
        "ALTER STABLE `meters` MODIFY COLUMN `note` NCHAR(20)", "ALTER STABLE `meters` ADD TAG `site` VARCHAR(5)"]
    with pytest.raises(ConfigError, match="VARCHAR needs a length"):
        ddl.type_sql(parse_type("varchar"), "x")
    with pytest.raises(ConfigError, match="cannot be used as a TDengine identifier"):
        ddl.ident("a`b")
