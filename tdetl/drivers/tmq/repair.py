"""Rows a database topic stops delivering, copied by query instead.

TDengine 3.3.7.5 (and the upstream code since) loses data in a *database* topic: when a child
table's tag is changed while a consumer group is subscribed, the vnode adds the table to the group
handle's "filtered out" set (``tqUpdateTbUidList(…, isAdd=false)``, meant for dropped tables) and
never takes it out again; its rows stop arriving in that group, including rows written before the
change but read after it. Super-table topics are not affected, but they forbid ``DROP STABLE``.

So a database-topic consumer that sees a child table altered records the table here (a small
state file per consumer group, because the server keeps filtering it in later runs too, until it
restarts) and its rows are copied by query: all of them the first time, then those newer than the
last copy minus ``LATE`` (rows written out of order further back than that are not caught).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...taos.catalog import rows
from ...taos.conn import Connection, Result
from ...taos.ddl import ident

log = logging.getLogger("tdetl.tmq")

LATE = 600  # seconds: how far back a repeated copy reaches before the last copy's newest row
_UNITS = {"ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def state_dir() -> Path:
    base = os.environ.get("TDETL_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "tdetl")
    return Path(base) / "tmq"


def warn_if_behind(group: str, db: str, retention: int, where: str) -> None:
    """A group's runs must come more often than the WAL is kept: what the server purged between two
    runs is not in the subscription (a later run continues after it). Warns when the last finished
    run of this group is older than 80% of the retention (-1: kept forever)."""
    mark = state_dir() / f"{group}.finished"
    if retention <= 0 or not mark.exists():
        return
    age = time.time() - mark.stat().st_mtime
    if age > 0.8 * retention:
        log.warning("%s: the last run of group %s finished %.0f s ago and database %s keeps its WAL %d s: rows"
                    " written before the WAL was purged are not in this subscription; run it more often or"
                    " raise WAL_RETENTION_PERIOD (a new group.id copies everything again)", where, group, age,
                    db, retention)


def mark_finished(group: str) -> None:
    """This group's run ended with everything committed (for :func:`warn_if_behind`)."""
    path = state_dir() / f"{group}.finished"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def altered_children(meta: dict[str, Any]) -> list[str]:
    """Child tables a meta message (JSON, single or batched) alters."""
    return [m["tableName"] for m in meta.get("metas", [meta])
            if m.get("type") == "alter" and m.get("tableType") == "child" and m.get("tableName")]


class Detached:
    """The tables one consumer group no longer receives, with the newest timestamp copied so far
    (None: never copied). Shared by the group's consumers; persisted on every change."""

    def __init__(self, group: str, db: str, precision: str) -> None:
        self.path = state_dir() / f"{group}.json"
        self.db, self.precision = db, precision
        self._lock = threading.Lock()
        self.tables: dict[str, int | None] = {}
        if self.path.exists():
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            self.tables = {k: v for k, v in doc.get(db, {}).items()}

    def add(self, tables: list[str]) -> None:
        with self._lock:
            new = [t for t in tables if t not in self.tables]
            if not new:
                return
            for t in new:
                self.tables[t] = None
            self._save()
        log.warning("%s: the server stops sending the rows of %s in this database topic once their tags"
                    " change (a TDengine bug); their rows are copied by query instead", self.db, ", ".join(new))

    def copied(self, table: str, newest: int | None) -> None:
        with self._lock:
            if table in self.tables and newest is not None:
                self.tables[table] = newest
                self._save()

    def forget(self, table: str) -> None:
        with self._lock:
            if self.tables.pop(table, 0) != 0:
                self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}
        doc[self.db] = self.tables
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)

    def queries(self, conn: Connection) -> Iterator[tuple[str, str, int | None]]:
        """``(table, SELECT, newest ts)`` for each table to copy now (a table since dropped is
        forgotten)."""
        with self._lock:
            todo = dict(self.tables)
        for table, since in todo.items():
            name = f"{ident(self.db)}.{ident(table)}"
            try:
                found = rows(conn, f"SELECT CAST(LAST(_c0) AS BIGINT) FROM {name}")
            except Exception as e:  # the table is gone: nothing left to copy
                log.info("%s: not copied (%s)", table, e)
                self.forget(table)
                continue
            newest = found[0][0] if found else None
            if newest is None:
                continue
            where = "" if since is None else f" WHERE _c0 >= {since - LATE * _UNITS[self.precision]}"
            yield table, f"SELECT * FROM {name}{where}", newest


def copy_raw(detached: Detached, source: Connection, target: Connection) -> int:
    """Copy the detached tables' rows as raw blocks (columns matched by name); rows copied."""
    total = 0
    for table, sql, newest in detached.queries(source):
        res: Result = source.query(sql)
        for block in res.blocks():
            target.write_block(table, block, res.fields)
            total += int.from_bytes(bytes(block[8:12]), "little")
        detached.copied(table, newest)
    return total
