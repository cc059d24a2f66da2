"""``duckdb:<file>`` as a target: one DuckDB table per super table (or normal table) with
``tbname`` and tag columns in front. Everything happens in one transaction, committed on success.
Param ``if_exists``: replace (default), append or fail, for tables the file already has.

Timestamps are written as DuckDB's own ``TIMESTAMP`` (microseconds) for ms/us precision and
``TIMESTAMP_NS`` for ns: DuckDB's functions (``epoch_ms``, ``date_trunc``, ``time_bucket``) take
those, while its ``TIMESTAMP_MS``/``TIMESTAMP_S`` are storage types that several refuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ...capabilities import SinkCapabilities
from ...dsn import Dsn
from ...errors import SinkError
from ...model import Catalog, TableBatch, wide
from ...options import Options
from ...params import Param, Spec
from ...quality import Rejects
from ...sink import Sink


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def duckdb_times(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Second and millisecond timestamps widened (losslessly) to microseconds."""
    coarse = [i for i, f in enumerate(batch.schema) if pa.types.is_timestamp(f.type) and f.type.unit in ("s", "ms")]
    for i in coarse:
        f = batch.schema.field(i)
        batch = batch.set_column(i, f.with_type(pa.timestamp("us", f.type.tz)),
                                 batch.column(i).cast(pa.timestamp("us", f.type.tz)))
    return batch


def _exec(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[Any]:
    """Run and drain a statement (DuckDB 2 refuses new work while a result is unfinished)."""
    return con.execute(sql, params).fetchall() if params is not None else con.execute(sql).fetchall()


class DuckDBSink(Sink):
    capabilities = SinkCapabilities(durable_flush=False, local_files=True)  # one transaction, committed at close
    spec = Spec(Param("if_exists", "choice", "replace", "for tables the file already has",
                      choices=("replace", "append", "fail")),
                Param("buffer_rows", "int", 1 << 20, "rows buffered before an INSERT", minimum=1))

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        self.path = dsn.path
        self.if_exists = self.config["if_exists"]
        self.buffer_rows = self.config["buffer_rows"]
        self.con: duckdb.DuckDBPyConnection | None = None
        self._ready: dict[str, set[str]] = {}  # table -> its columns
        self._buffer: dict[str, list[pa.RecordBatch]] = {}
        self._rows = 0

    def local_root(self) -> Path:
        return self.path

    def prepare(self, catalog: Catalog) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path))
        except duckdb.Error as e:
            raise SinkError(f"{self.dsn.masked()}: cannot open DuckDB file: {e}") from None
        self.con.begin()

    def write(self, batch: TableBatch) -> None:
        self._buffer.setdefault(batch.spec.group, []).append(duckdb_times(wide(batch)))
        self._rows += batch.num_rows
        if self._rows >= self.buffer_rows:
            self._insert()

    def _insert(self) -> None:
        assert self.con is not None
        for name, batches in self._buffer.items():
            try:  # a super table that grew (a tag first seen later) gives batches more columns
                table = pa.concat_tables([pa.Table.from_batches([b]) for b in batches], promote_options="default")
            except pa.ArrowInvalid as e:
                raise SinkError(f"{self.dsn.masked()}: tables of {name!r} differ in column types: {e}") from None
            self.con.register("__tdetl_batch", table)
            try:
                self._ensure(name)
                _exec(self.con, f"INSERT INTO {quote_ident(name)} BY NAME SELECT * FROM __tdetl_batch")
            except duckdb.Error as e:
                raise SinkError(f"{self.dsn.masked()}: table {name!r} refused rows: {e}") from None
            finally:
                self.con.unregister("__tdetl_batch")
        self._buffer.clear()
        self._rows = 0

    def _ensure(self, name: str) -> None:
        """Create (or replace) the table on first sight; add the columns a later batch brings."""
        assert self.con is not None
        if name not in self._ready:
            exists = _exec(self.con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                           [name])[0][0]
            if exists and self.if_exists == "fail":
                raise SinkError(f"{self.dsn.masked()}: table {name!r} already exists (if_exists=fail)")
            if exists and self.if_exists == "replace":
                _exec(self.con, f"DROP TABLE {quote_ident(name)}")
                exists = 0
            if not exists:
                _exec(self.con, f"CREATE TABLE {quote_ident(name)} AS SELECT * FROM __tdetl_batch LIMIT 0")
            self._ready[name] = {r[0] for r in _exec(self.con, f"DESCRIBE {quote_ident(name)}")}
        known = self._ready[name]
        for col, kind, *_ in _exec(self.con, "DESCRIBE SELECT * FROM __tdetl_batch"):
            if col not in known:
                _exec(self.con, f"ALTER TABLE {quote_ident(name)} ADD COLUMN {quote_ident(col)} {kind}")
                known.add(col)

    def flush(self, checkpoint: dict[str, Any] | None = None) -> None:
        if self._buffer:
            self._insert()

    def close(self) -> None:
        if self.con is not None:
            if self._buffer:
                self._insert()
            self.con.commit()
            self.con.close()
            self.con = None

    def abort(self) -> None:
        self._buffer.clear()
        if self.con is not None:
            try:
                self.con.rollback()
            finally:
                self.con.close()
                self.con = None
