"""``taos://`` (native) and ``taos+ws://`` / ``taos+wss://`` (taosAdapter) as a target.

Batches are buffered; a flush first creates what is missing — the database with ``assert`` (with
the source database's options), super tables (widened with ALTER when wider data arrives), and new
child tables with their tags, many per ``CREATE TABLE`` under ``max-sql-length`` — then writes raw
blocks matched to columns by name. A block the server refuses for its size is split and retried.
Tables with BLOB columns go through SQL text: raw-block writes of BLOB crashed the 3.3.7.5 client.
With ``failes-to=<file>`` a table that fails is written to the file with its reason and the rest
carries on; otherwise the first failure stops the run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from .. import rawblock
from ..dsn import Dsn
from ..errors import DataError, DsnError, SinkError, TaosError
from ..model import Catalog, SuperTable, TableBatch, TableSpec
from ..taos import ddl
from ..taos.conn import Connection
from ..taos.connect import CONNECTION_PARAMS, open_connection
from ..types import TDType
from .base import Sink

log = logging.getLogger("tdetl.taos")

_SIZE_ERRORS = ("wal size exceeds limit", "exceed", "too large", "too big", "msg too long")
_NOT_YET = ("force-stmt", "timeout-per-table")


def _is_size_error(e: TaosError) -> bool:
    return (e.code & 0xFFFF) == 0x002B or any(s in e.message.lower() for s in _SIZE_ERRORS)


class TaosSink(Sink):
    protocols = (None, "ws", "wss")
    params = CONNECTION_PARAMS | frozenset({
        "assert", "batch-size", "interval", "max-sql-length", "failes-to", "timeout-per-table",
        "update-tags", "force-stmt", "block-bytes", "buffer-bytes"})

    def __init__(self, dsn: Dsn, options: Any) -> None:
        super().__init__(dsn, options)
        for p in _NOT_YET:
            if dsn.has(p):
                raise DsnError(f"{dsn.masked()}: parameter {p} is not supported by tdetl yet")
        obj = dsn.object.strip("/")
        if not obj:
            raise DsnError(f"{dsn.masked()}: name the target database, e.g. taos://host:6030/<db>")
        self.db, _, self.rename = obj.partition(".")
        self.create_db = dsn.flag("assert")
        self.rows_per_block = dsn.integer("batch-size", 0)
        self.pause = dsn.duration("interval")
        self.max_sql = dsn.integer("max-sql-length", ddl.DEFAULT_MAX_SQL, minimum=1024)
        failes = dsn.get("failes-to")
        self.failes_to = Path(failes) if failes else None
        self.update_tags = dsn.flag("update-tags")
        self.block_bytes = dsn.integer("block-bytes", rawblock.DEFAULT_MAX_BYTES, minimum=4096)
        self.buffer_bytes = dsn.integer("buffer-bytes", 64 << 20, minimum=1)
        self.conn: Connection | None = None
        self.encoder = rawblock.Encoder()
        self.precision = "ms"
        self.stables: dict[str, SuperTable] = {}
        self.tables: set[str] = set()
        self.failed: dict[str, str] = {}
        self._pending: list[TableBatch] = []
        self._bytes = 0

    # -- setup ----------------------------------------------------------------------------------

    def prepare(self, catalog: Catalog) -> None:
        self.conn = open_connection(self.dsn)
        if self.create_db:
            dbs = list(catalog.databases.values())
            src = catalog.databases.get(self.db) or (dbs[0] if len(dbs) == 1 else None)
            precision = src.precision if src else next((st.precision for st in catalog.stables.values()), None)
            self._sql(ddl.create_database(self.db, src.options if src else {}, precision))
        try:
            self.conn.execute(f"USE {ddl.ident(self.db)}")
        except TaosError as e:
            hint = "" if self.create_db else " (add ?assert to create it)"
            raise SinkError(f"{self.dsn.masked()}: database {self.db!r} cannot be used: {e.message}{hint}") from None
        self.precision = self._database_precision()

    def _database_precision(self) -> str:
        assert self.conn is not None
        res = self.conn.query("SELECT `precision` FROM information_schema.ins_databases"
                              f" WHERE name = {ddl.literal(TDType('VARCHAR'), self.db)}")
        rows = res.table().column(0).to_pylist() if not res.is_update else []
        return str(rows[0]) if rows and rows[0] in ("ms", "us", "ns") else "ms"

    def _sql(self, sql: str) -> None:
        assert self.conn is not None
        log.debug("%s", sql[:200])
        self.conn.execute(sql)

    # -- data -----------------------------------------------------------------------------------

    def _target(self, spec: TableSpec) -> TableSpec:
        if not self.rename:
            return spec.replace(database=self.db)
        if spec.stable is not None:
            return spec.replace(database=self.db, stable=self.rename)
        return spec.replace(database=self.db, name=self.rename)

    def write(self, batch: TableBatch) -> None:
        self._pending.append(TableBatch(self._target(batch.spec), batch.data, batch.partition, batch.position))
        self._bytes += batch.data.nbytes

    def wants_flush(self) -> bool:
        return self._bytes >= self.buffer_bytes

    def flush(self, checkpoint: dict[str, Any] | None = None) -> None:
        if not self._pending:
            return
        pending, self._pending, self._bytes = self._pending, [], 0
        self._ensure_tables([b.spec for b in pending])
        for b in pending:
            if b.spec.name not in self.failed:
                self._write_table(b.spec, b.data)

    def _ensure_tables(self, specs: list[TableSpec]) -> None:
        grown: dict[str, SuperTable] = {}
        for s in specs:
            if s.stable is not None:
                base = grown.get(s.stable) or self.stables.get(s.stable)
                grown[s.stable] = base.merged(s) if base else SuperTable(s.database, s.stable, s.columns,
                                                                          s.tags, s.precision)
        for name, st in grown.items():
            old = self.stables.get(name)
            if old is None:
                self._sql(ddl.create_stable(st))
            else:
                for stmt in ddl.alter_widths(name, old, st):
                    self._sql(stmt)
            self.stables[name] = st
        clauses, new_children = [], []
        for s in specs:
            if s.name in self.tables:
                continue
            self.tables.add(s.name)
            if s.stable is None:
                self._sql(ddl.create_normal_table(s))
            else:
                clauses.append(ddl.child_clause(s, self.stables[s.stable]))
                new_children.append(s)
        for stmt in ddl.create_child_tables(clauses, self.max_sql):
            self._sql(stmt)
        if self.update_tags:
            for s in new_children:
                for tag in self.stables[s.stable].tags:  # type: ignore[index]
                    self._sql(f"ALTER TABLE {ddl.ident(s.name)} SET TAG {ddl.ident(tag.name)}"
                              f" = {ddl.literal(tag.type, s.tag_dict.get(tag.name))}")

    def _write_table(self, spec: TableSpec, data: pa.RecordBatch) -> None:
        try:
            if any(c.type.name == "BLOB" for c in spec.columns):
                self._write_sql(spec, data)
            else:
                self._write_blocks(spec, data, 0, data.num_rows)
        except (TaosError, DataError) as e:
            reason = " ".join(str(e).split())
            if self.failes_to is None:
                raise SinkError(f"{self.dsn.masked()}: table {spec.name!r}: {reason}") from None
            self.failed[spec.name] = reason
            with self.failes_to.open("a", encoding="utf-8") as fh:
                fh.write(f"{spec.name}\t{reason}\n")
            log.warning("table %s failed: %s", spec.name, reason)
        if self.pause:
            time.sleep(self.pause)

    def _write_blocks(self, spec: TableSpec, data: pa.RecordBatch, start: int, rows: int) -> None:
        assert self.conn is not None
        ranges = rawblock.encode_ranges(data, spec.columns, self.precision, self.block_bytes, self.encoder,
                                        start, rows, self.rows_per_block)
        for first, n, block in ranges:
            try:
                self.conn.write_block(spec.name, block, spec.columns)
            except TaosError as e:
                if not _is_size_error(e) or n == 1:
                    raise
                half = n // 2
                log.info("table %s: block of %d rows refused for size, splitting", spec.name, n)
                self._write_blocks(spec, data, first, half)
                self._write_blocks(spec, data, first + half, n - half)

    def _write_sql(self, spec: TableSpec, data: pa.RecordBatch) -> None:
        """INSERT text under max-sql-length (the slow path, for BLOB tables)."""
        cols = list(spec.columns)
        arrays = []
        for arr in data.columns:
            if pa.types.is_timestamp(arr.type):
                arr = arr.cast(pa.timestamp(self.precision)).cast(pa.int64())
            arrays.append(arr.to_pylist())
        head = f"INSERT INTO {ddl.ident(spec.name)} ({', '.join(ddl.ident(c.name) for c in cols)}) VALUES "
        parts: list[str] = []
        size = len(head)
        for row in zip(*arrays):
            text = "(" + ", ".join(ddl.literal(c.type, v) for c, v in zip(cols, row)) + ")"
            if parts and size + len(text) + 1 > self.max_sql:
                self._sql(head + " ".join(parts))
                parts, size = [], len(head)
            parts.append(text)
            size += len(text) + 1
        if parts:
            self._sql(head + " ".join(parts))

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._disconnect()
        if self.failed:
            log.warning("%d tables failed; see %s", len(self.failed), self.failes_to)

    def abort(self) -> None:
        self._pending.clear()
        self._disconnect()

    def _disconnect(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
