"""The tables a subscription delivers, as they are now: each child table's super table, columns and
tags, looked up on the source when first seen or when data carries a column the known schema lacks,
and forgotten when a meta message changes them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ...model import Catalog, Column, TableSpec
from ...taos import catalog as taos_catalog
from ...taos.catalog import records
from ...taos.conn import Connection
from ...taos.ddl import ident, literal
from ...types import TDType

log = logging.getLogger("tdetl.tmq")


class Schemas:
    def __init__(self, db: str, conn: Callable[[], Connection], catalog: Callable[[], Catalog],
                 query_lock: threading.RLock) -> None:
        self.db = db
        self._conn, self._catalog = conn, catalog
        self._query_lock = query_lock  # the source connection serves one query at a time (WebSocket)
        self._lock = threading.Lock()
        self._specs: dict[str, TableSpec] = {}
        self._stables: dict[str, tuple[tuple[Column, ...], tuple[Column, ...]]] = {}

    def spec(self, table: str, columns: tuple[Column, ...], precision: str) -> TableSpec | None:
        """The table as it is now (its super table's current columns, its current tags): rows
        written before a schema change are widened to it, so one table has one schema downstream.
        Looked up again when data carries a column the known schema lacks; None for a table gone."""
        with self._lock:
            spec = self._specs.get(table)
        if spec is not None and _covers(spec.columns, columns):
            return spec
        if spec is None:
            spec = self._catalog().tables.get((self.db, table))
        if spec is None or not _covers(spec.columns, columns):
            with self._query_lock:
                spec = self._lookup(table)
        if spec is None:
            log.info("table %s is gone from %s: its rows in this message are skipped", table, self.db)
            return None
        spec = spec.replace(precision=precision, database=self.db)
        with self._lock:
            self._specs[table] = spec
        return spec

    def _lookup(self, table: str) -> TableSpec | None:
        """A table the catalog did not know (created since): its super table and tags, now."""
        conn = self._conn()
        s = literal(TDType("VARCHAR"), table)
        found = records(conn, "SELECT stable_name FROM information_schema.ins_tables"
                              f" WHERE db_name = {literal(TDType('VARCHAR'), self.db)} AND table_name = {s}")
        if not found:
            return None
        st = found[0].get("stable_name")
        if not st:
            cols, _ = taos_catalog.describe(conn, self.db, table)
            return TableSpec(table, cols, self.db)
        cols, tags = self.stable(st)
        names = ", ".join(ident(t.name) for t in tags)
        rows = taos_catalog.rows(conn, f"SELECT TAGS {names} FROM {ident(self.db)}.{ident(st)} WHERE tbname = {s}")
        if not rows:
            return None
        return TableSpec(table, cols, self.db, st, tags, tuple(rows[0]))

    def stable(self, st: str) -> tuple[tuple[Column, ...], tuple[Column, ...]]:
        """A super table's columns and tags as the source has them now."""
        with self._lock:
            known = self._stables.get(st)
        if known is None:
            with self._query_lock:
                known = taos_catalog.describe(self._conn(), self.db, st)
            with self._lock:
                self._stables[st] = known
        return known

    def changed(self, meta: dict[str, Any]) -> None:
        """A meta message (TDengine's JSON): forget what it changes. The catalog read at the start
        is stale for those tables too."""
        for m in meta.get("metas", [meta]):
            name = m.get("tableName")
            if not name:
                continue
            with self._lock:
                self._specs.pop(name, None)
                self._catalog().tables.pop((self.db, name), None)
                if m.get("tableType") == "super":
                    self._stables.pop(name, None)
                    for k in [k for k, s in self._specs.items() if s.stable == name]:
                        self._specs.pop(k, None)


def _covers(known: tuple[Column, ...], got: tuple[Column, ...]) -> bool:
    names = {c.name: c.type.type_id for c in known}
    return all(names.get(c.name) == c.type.type_id for c in got)
