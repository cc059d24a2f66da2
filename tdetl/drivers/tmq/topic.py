"""The topic a ``tmq://`` DSN subscribes to: created by tdetl (named so that reruns reuse it) or
named by ``topic=``; and the database checks that must pass before subscribing."""

from __future__ import annotations

import logging
import re

from ...errors import ConfigError, SourceError, TaosError
from ...taos.catalog import records
from ...taos.conn import Connection
from ...taos.ddl import ident, literal
from ...types import TDType

log = logging.getLogger("tdetl.tmq")

WAL_RETENTION_ZERO = 0x038C


def _str(text: str) -> str:
    return literal(TDType("VARCHAR"), text)


def topic_name(db: str, sub: str, with_meta: bool) -> str:
    """``tdetl_<db>[_<table>][_meta]``: one name per definition, so a rerun resumes its offsets."""
    base = "_".join(filter(None, ("tdetl", db, sub, "meta" if with_meta else "")))
    return re.sub(r"[^A-Za-z0-9_]", "_", base)[:192]


def definition(conn: Connection, db: str, sub: str, with_meta: bool, where: str) -> str:
    """The ``AS ...`` part: the database, a super table, or one table's rows."""
    if not sub:
        return f"{'WITH META ' if with_meta else ''}AS DATABASE {ident(db)}"
    found = records(conn, "SELECT stable_name FROM information_schema.ins_stables"
                          f" WHERE db_name = {_str(db)} AND stable_name = {_str(sub)}")
    if found:
        return f"{'WITH META ' if with_meta else ''}AS STABLE {ident(db)}.{ident(sub)}"
    found = records(conn, "SELECT table_name FROM information_schema.ins_tables"
                          f" WHERE db_name = {_str(db)} AND table_name = {_str(sub)}")
    if not found:
        raise ConfigError(f"{where}: {sub!r} is neither a super table nor a table of database {db!r}")
    return f"AS SELECT * FROM {ident(db)}.{ident(sub)}"


def check_database(conn: Connection, db: str, where: str) -> int:
    """The database exists and keeps its WAL (a subscription reads the WAL): its retention in s."""
    found = records(conn, "SELECT `wal_retention_period` FROM information_schema.ins_databases"
                          f" WHERE name = {_str(db)}")
    if not found:
        raise SourceError(f"{where}: database {db!r} does not exist")
    if int(found[0].get("wal_retention_period") or 0) == 0:
        raise TaosError(WAL_RETENTION_ZERO, f"WAL retention period is zero: ALTER DATABASE {db}"
                        " WAL_RETENTION_PERIOD 3600", where)
    return int(found[0]["wal_retention_period"])


def ensure_topic(conn: Connection, db: str, sub: str, with_meta: bool, where: str) -> str:
    """Create tdetl's topic unless it exists with the same definition; a topic of that name with
    another definition is refused (dropping it would lose other consumers' offsets)."""
    name = topic_name(db, sub, with_meta)
    body = definition(conn, db, sub, with_meta, where)
    want = f"CREATE TOPIC {ident(name)} {body}"
    found = records(conn, f"SELECT `sql` FROM information_schema.ins_topics WHERE topic_name = {_str(name)}")
    if found:
        have = str(found[0].get("sql") or "")
        if _norm(have) != _norm(want):
            raise ConfigError(f"{where}: topic {name!r} exists as {have!r}, not as {want!r}; drop it"
                              f" (DROP TOPIC {name}) or name the topics to read with topic=")
        return name
    log.info("creating topic: %s", want)
    conn.execute(want)
    return name


def check_topics(conn: Connection, topics: list[str], where: str) -> None:
    for t in topics:
        if not records(conn, f"SELECT topic_name FROM information_schema.ins_topics WHERE topic_name = {_str(t)}"):
            raise ConfigError(f"{where}: topic={t!r} does not exist")


def database_topics(conn: Connection, names: list[str]) -> list[str]:
    """Those of ``names`` that are database topics (``AS DATABASE``)."""
    out = []
    for t in names:
        found = records(conn, f"SELECT `type` FROM information_schema.ins_topics WHERE topic_name = {_str(t)}")
        if found and str(found[0].get("type")).lower() == "db":
            out.append(t)
    return out


def _norm(sql: str) -> str:
    return re.sub(r"[`\s;]+", " ", sql).strip().lower()
