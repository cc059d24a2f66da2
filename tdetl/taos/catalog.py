"""What a TDengine database holds, read over any transport: database options, super tables with
their columns and tags, child tables with tag values, normal tables. TDengine 3 answers from
``information_schema`` and ``SELECT TAGS``; 2.x from ``SHOW`` commands and tag-only selects."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from ..errors import ConfigError, TaosError
from ..model import Catalog, Column, Database, SuperTable, TableSpec
from ..types import TDType, parse_type
from .conn import Connection
from .ddl import ident, literal

log = logging.getLogger("tdetl.taos")
_VARSIZED = ("VARCHAR", "BINARY", "NCHAR", "VARBINARY", "GEOMETRY")


def major_version(conn: Connection) -> int:
    version = conn.server_version
    if not version:
        version = str(rows(conn, "SELECT SERVER_VERSION()")[0][0])
        conn.server_version = version
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 3


def rows(conn: Connection, sql: str) -> list[tuple[Any, ...]]:
    """A small result as Python tuples (catalog queries only; data goes through Arrow). Timestamps
    stay epoch integers in their precision (tag values: a datetime would lose nanoseconds)."""
    res = conn.query(sql)
    if res.is_update:
        return []
    t = res.table()
    cols = (c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in t.columns)
    return list(zip(*(c.to_pylist() for c in cols))) if t.num_columns else []


def records(conn: Connection, sql: str) -> list[dict[str, Any]]:
    res = conn.query(sql)
    if res.is_update:
        return []
    return [{k.lower(): v for k, v in r.items()} for r in res.table().to_pylist()]


def _str(text: str) -> str:
    return literal(TDType("VARCHAR"), text)


def describe(conn: Connection, db: str, name: str) -> tuple[tuple[Column, ...], tuple[Column, ...]]:
    """Columns and tags of a table from ``DESCRIBE`` (field, type, length, note)."""
    cols: list[Column] = []
    tags: list[Column] = []
    where = f"{db}.{name}"
    for r in records(conn, f"DESCRIBE {ident(db)}.{ident(name)}"):
        type_text = str(r["type"]).strip()
        if "(" not in type_text and type_text.upper() in _VARSIZED:
            type_text = f"{type_text}({int(r['length'])})"
        t = parse_type(type_text, f"{where} column {r['field']!r}")
        note = str(r.get("note") or "").upper()
        (tags if note == "TAG" else cols).append(Column(str(r["field"]), t, note in ("COMPOSITE KEY", "PRIMARY KEY")))
    if not cols:
        raise ConfigError(f"{where}: DESCRIBE returned no columns")
    return tuple(cols), tuple(tags)


# Columns of information_schema.ins_databases that are CREATE DATABASE options worth keeping.
# replica is left to the target's default: a 3-replica source must restore onto a 1-node target.
_V3_OPTIONS = {"vgroups": "vgroups", "duration": "duration", "keep": "keep", "buffer": "buffer",
               "pagesize": "pagesize", "pages": "pages", "minrows": "minrows", "maxrows": "maxrows",
               "comp": "comp", "cachemodel": "cachemodel", "cachesize": "cachesize",
               "wal_level": "wal_level", "wal_fsync_period": "wal_fsync_period",
               "wal_retention_period": "wal_retention_period", "wal_retention_size": "wal_retention_size",
               "stt_trigger": "stt_trigger", "table_prefix": "table_prefix", "table_suffix": "table_suffix",
               "tsdb_pagesize": "tsdb_pagesize", "keep_time_offset": "keep_time_offset"}


SYSTEM_DATABASES = frozenset({"information_schema", "performance_schema"})


def user_databases(conn: Connection) -> list[str]:
    """Every database but the server's own (information_schema, performance_schema), by name."""
    if major_version(conn) >= 3:
        names = [str(r.get("name")) for r in records(conn, "SELECT name FROM information_schema.ins_databases")]
    else:
        names = [str(r.get("name")) for r in records(conn, "SHOW DATABASES")]
    return sorted(n for n in names if n not in SYSTEM_DATABASES)


def database(conn: Connection, db: str, where: str = "") -> Database:
    if major_version(conn) >= 3:
        found = records(conn, f"SELECT * FROM information_schema.ins_databases WHERE name = {_str(db)}")
    else:
        found = [r for r in records(conn, "SHOW DATABASES") if r.get("name") == db]
    if not found:
        raise TaosError(0x0388, f"database {db!r} does not exist", where)
    row = found[0]
    precision = str(row.get("precision") or "ms")
    options: dict[str, Any] = {}
    if major_version(conn) >= 3:
        for col, opt in _V3_OPTIONS.items():
            v = row.get(col)
            if v is None or v == "":
                continue
            options[opt] = int(v) if isinstance(v, bool) else v
    return Database(db, precision, options)


def table_names(conn: Connection, db: str) -> tuple[list[str], list[str]]:
    """Names of the super tables and the normal tables in ``db`` (child tables are not listed)."""
    if major_version(conn) >= 3:
        st_names = [r[0] for r in rows(conn, f"SELECT stable_name FROM information_schema.ins_stables"
                                             f" WHERE db_name = {_str(db)}")]
        normal = [r[0] for r in rows(conn, f"SELECT table_name FROM information_schema.ins_tables"
                                           f" WHERE db_name = {_str(db)} AND type = 'NORMAL_TABLE'")]
    else:
        st_names = [r["name"] for r in records(conn, f"SHOW {ident(db)}.STABLES")]
        normal = [r["table_name"] for r in records(conn, f"SHOW {ident(db)}.TABLES") if not r.get("stable_name")]
    return [str(n) for n in st_names], [str(n) for n in normal]


def _tag_rows(conn: Connection, db: str, st: SuperTable, v3: bool) -> list[tuple[Any, ...]]:
    names = ", ".join(ident(t.name) for t in st.tags)
    table = f"{ident(db)}.{ident(st.name)}"
    if v3:
        try:
            return rows(conn, f"SELECT TAGS tbname, {names} FROM {table}")
        except TaosError as e:  # before 3.0.2: only tables holding data are listed
            log.debug("SELECT TAGS refused (%s); using DISTINCT", e.message)
            return rows(conn, f"SELECT DISTINCT tbname, {names} FROM {table}")
    return rows(conn, f"SELECT tbname, {names} FROM {table}")


def _wanted_table(name: str, stable: str | None, stables: set[str], tables: set[str]) -> bool:
    if not stables and not tables:
        return True
    if stable is not None and stable in stables:
        return True
    return name in tables or (stable is not None and f"{stable}.{name}" in tables)


def read_catalog(conn: Connection, db: str, stables: Iterable[str] = (), tables: Iterable[str] = (),
                 where: str = "") -> Catalog:
    """The catalog of ``db`` limited to ``stables`` and ``tables`` (``t`` or ``st.t``) when given."""
    want_st, want_t = set(stables), set(tables)
    v3 = major_version(conn) >= 3
    cat = Catalog()
    info = database(conn, db, where)
    cat.databases[db] = info
    st_names, normal = table_names(conn, db)
    table_stables = {t.split(".", 1)[0] for t in want_t if "." in t}
    missing = (want_st | table_stables) - set(st_names)
    if missing:
        raise ConfigError(f"{where}: super table {sorted(missing)[0]!r} is not in database {db!r}")
    for name in sorted(st_names):
        plain = {t for t in want_t if "." not in t}
        if want_st or want_t:
            if name not in want_st and name not in table_stables and not plain:
                continue
        cols, tags = describe(conn, db, name)
        st = SuperTable(db, name, cols, tags, info.precision)
        children = []
        for r in _tag_rows(conn, db, st, v3):
            if r[0] is None or not _wanted_table(r[0], name, want_st, want_t):
                continue
            children.append(TableSpec(str(r[0]), cols, db, name, tags, tuple(r[1:]), info.precision))
        if children or name in want_st or not (want_st or want_t):
            cat.stables[(db, name)] = st
            for spec in children:
                cat.tables[(db, spec.name)] = spec
    for name in sorted(normal):
        if not _wanted_table(name, None, want_st, want_t):
            continue
        cols, _ = describe(conn, db, name)
        cat.tables[(db, name)] = TableSpec(name, cols, db, None, (), (), info.precision)
    found = {t.name for t in cat.tables.values()}
    for t in want_t:
        if t.split(".")[-1] not in found:
            raise ConfigError(f"{where}: table {t!r} is not in database {db!r}")
    return cat
