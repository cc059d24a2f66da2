"""SQL that creates what a catalog describes: databases, super tables, and child tables with their
tags (a raw-block write needs the table to exist and does not write tags). Child tables are created
many per statement, under ``max-sql-length``."""

from __future__ import annotations

import decimal
import re
from collections.abc import Iterable, Iterator
from typing import Any

from ..errors import ConfigError
from ..model import Column, SuperTable, TableSpec
from ..types import TDType
from .wkt import wkb_to_wkt

DEFAULT_MAX_SQL = 800_000  # taosX's max-sql-length default
_QUOTED_OPTIONS = ("precision", "cachemodel", "encrypt_algorithm")
_DB_OPTIONS = ("precision", "keep", "duration", "vgroups", "replica", "buffer", "pages", "pagesize",
               "minrows", "maxrows", "comp", "wal_level", "wal_fsync_period", "cachemodel", "cachesize",
               "wal_retention_period", "wal_retention_size", "stt_trigger", "single_stable",
               "table_prefix", "table_suffix", "tsdb_pagesize", "keep_time_offset", "encrypt_algorithm",
               "s3_keeplocal", "s3_chunkpages", "s3_compact")


def ident(name: str) -> str:
    """A quoted identifier (backquotes keep case and allow any character but the backquote)."""
    if "`" in name or not name:
        raise ConfigError(f"name {name!r} cannot be used as a TDengine identifier")
    return f"`{name}`"


def type_sql(t: TDType, where: str) -> str:
    if t.name in ("VARCHAR", "NCHAR", "VARBINARY", "GEOMETRY") and not t.length:
        raise ConfigError(f"{where}: {t.name} needs a length before it can be created")
    if t.name == "TIMESTAMP":
        return "TIMESTAMP"
    return str(t)


def _columns_sql(cols: Iterable[Column], where: str) -> str:
    return ", ".join(f"{ident(c.name)} {type_sql(c.type, where)}{' PRIMARY KEY' if c.primary_key else ''}"
                     for c in cols)


def literal(t: TDType, v: Any) -> str:
    """A tag or value literal of type ``t``."""
    if v is None:
        return "NULL"
    if t.name == "BOOL":
        return "true" if v else "false"
    if t.name == "GEOMETRY":  # the SQL parser takes WKT only
        return "'" + wkb_to_wkt(bytes(v)) + "'"
    if t.name in ("VARBINARY", "BLOB"):
        return "'\\x" + bytes(v).hex() + "'"
    if isinstance(v, (bytes, bytearray)):
        v = bytes(v).decode("utf-8", errors="replace")
    if isinstance(v, str):
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(v, float):
        return repr(v) if v == v and v not in (float("inf"), float("-inf")) else "NULL"
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    return str(int(v)) if isinstance(v, bool | int) else f"'{v}'"


def create_database(name: str, options: dict[str, Any], precision: str | None) -> str:
    parts = [f"CREATE DATABASE IF NOT EXISTS {ident(name)}"]
    opts = {k.lower(): v for k, v in options.items() if k.lower() in _DB_OPTIONS}
    if precision:
        opts["precision"] = precision
    for k, v in opts.items():
        text = str(v)
        if k in _QUOTED_OPTIONS:
            if not re.fullmatch(r"[A-Za-z0-9_]+", text):
                raise ConfigError(f"database option {k}={v!r} is not a plain value")
            text = f"'{text}'"
        elif not re.fullmatch(r"[A-Za-z0-9_.,:-]+", text):
            raise ConfigError(f"database option {k}={v!r} is not a plain value")
        parts.append(f"{k.upper()} {text}")
    return " ".join(parts)


def create_stable(st: SuperTable) -> str:
    where = f"super table {st.name!r}"
    if not st.tags:
        raise ConfigError(f"{where}: a super table needs at least one tag")
    return (f"CREATE STABLE IF NOT EXISTS {ident(st.name)} ({_columns_sql(st.columns, where)})"
            f" TAGS ({_columns_sql(st.tags, where)})")


def create_normal_table(spec: TableSpec) -> str:
    return f"CREATE TABLE IF NOT EXISTS {ident(spec.name)} ({_columns_sql(spec.columns, f'table {spec.name!r}')})"


def child_clause(spec: TableSpec, stable: SuperTable) -> str:
    """``IF NOT EXISTS t USING st (tags) TAGS (values)`` with tags in the super table's order."""
    values = spec.tag_dict
    names = ", ".join(ident(t.name) for t in stable.tags)
    vals = ", ".join(literal(t.type, values.get(t.name)) for t in stable.tags)
    return f"IF NOT EXISTS {ident(spec.name)} USING {ident(stable.name)} ({names}) TAGS ({vals})"


def create_child_tables(clauses: Iterable[str], max_sql: int = DEFAULT_MAX_SQL) -> Iterator[str]:
    """``CREATE TABLE`` statements each holding as many clauses as fit in ``max_sql`` bytes."""
    head = "CREATE TABLE"
    current: list[str] = []
    size = len(head)
    for clause in clauses:
        n = len(clause.encode()) + 1
        if current and size + n > max_sql:
            yield head + " " + " ".join(current)
            current, size = [], len(head)
        current.append(clause)
        size += n
    if current:
        yield head + " " + " ".join(current)


def alter_widths(st_name: str, old: SuperTable, new: SuperTable) -> list[str]:
    """``ALTER STABLE ... MODIFY COLUMN/TAG`` for columns and tags whose declared width grew, and
    ``ADD`` for new ones."""
    out = []
    for kind, olds, news in (("COLUMN", old.columns, new.columns), ("TAG", old.tags, new.tags)):
        before = {c.name: c.type for c in olds}
        for c in news:
            if c.name not in before:
                out.append(f"ALTER STABLE {ident(st_name)} ADD {kind} {ident(c.name)} {type_sql(c.type, st_name)}")
            elif (c.type.length or 0) > (before[c.name].length or 0):
                out.append(f"ALTER STABLE {ident(st_name)} MODIFY {kind} {ident(c.name)} {type_sql(c.type, st_name)}")
    return out
