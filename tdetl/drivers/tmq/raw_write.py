"""Writing one TMQ message into the target as it came (``tmq_write_raw``), and table by table when
the server refuses a data message."""

from __future__ import annotations

import logging

from ...errors import TaosError
from ...model import SuperTable
from ...taos import catalog as taos_catalog
from ...taos import ddl, tmq_raw
from ...taos.conn import Connection
from ...taos.consumer import Message
from ...taos.ddl import literal
from ...types import TDType
from .schemas import Schemas

log = logging.getLogger("tdetl.tmq")

TABLE_BY_TABLE = (0x0115, 0x2603)  # raw writes refused as "Invalid message", "Table does not exist"


class RawWriter:
    def __init__(self, schemas: Schemas, where: str) -> None:
        self.schemas, self.where = schemas, where
        self.target_db = ""  # set once the target is prepared

    def write(self, conn: Connection, msg: Message) -> None:
        """``tmq_write_raw``, and table by table when it refuses a data message: missing tables are
        created (as the source has them now), then each block is written by column names. 3.3.7.5
        refuses two kinds: "Invalid message" for some messages that auto-create a child table
        among many tables' blocks, and "Table does not exist" when a snapshot resumed after a crash
        holds rows of tables created after the snapshot began (whose create is still in the WAL)."""
        try:
            conn.write_raw(msg.raw_type, msg.raw)
            return
        except TaosError as e:
            if e.code & 0xFFFF not in TABLE_BY_TABLE or msg.raw_type not in tmq_raw.DATA_TYPES:
                raise
            log.info("raw write refused (%s): writing the message's %s table by table", e.brief, msg.kind)
        blocks = tmq_raw.parse(msg.raw, self.where)
        db = literal(TDType("VARCHAR"), self.target_db)
        have = {r[0] for r in taos_catalog.rows(conn, f"SELECT table_name FROM information_schema.ins_tables"
                                                      f" WHERE db_name = {db}")}
        stables = {r[0] for r in taos_catalog.rows(conn, f"SELECT stable_name FROM information_schema.ins_stables"
                                                         f" WHERE db_name = {db}")}
        clauses = []
        for b in blocks:
            if b.table in have:
                continue
            spec = self.schemas.spec(b.table, b.columns, b.precision)
            if spec is None:
                continue
            if spec.stable is None:
                conn.execute(ddl.create_normal_table(spec))
            else:
                cols, tags = self.schemas.stable(spec.stable)
                st = SuperTable(None, spec.stable, cols, tags, spec.precision)
                if spec.stable not in stables:
                    conn.execute(ddl.create_stable(st))
                    stables.add(spec.stable)
                clauses.append(ddl.child_clause(spec, st))
            have.add(b.table)
        for stmt in ddl.create_child_tables(clauses):
            conn.execute(stmt)
        for b in blocks:
            if b.rows > 0 and b.table in have:  # a table the source has dropped since is not revived
                conn.write_block(b.table, b.block, b.columns)
