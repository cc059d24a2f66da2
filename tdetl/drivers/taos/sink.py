"""``taos://`` (native) and ``taos+ws://`` / ``taos+wss://`` (taosAdapter) as a target.

Batches are buffered; a flush first creates what is missing — the database with ``assert`` (with
the source database's options), super tables (widened with ALTER when wider data arrives), and new
child tables with their tags, many per ``CREATE TABLE`` under ``max-sql-length`` — then writes raw
blocks matched to columns by name. A block the server refuses for its size is split and retried.
Tables with BLOB columns go through SQL text: raw-block writes of BLOB crashed the 3.3.7.5 client.
Over REST (``taos+http(s)://``) every table goes through ``INSERT`` text, many tables per statement.
``force-stmt`` binds parameters instead (taos-ws-py / taospy); ``timeout-per-table`` fails a table
whose writes took longer than that in total. Raw blocks go out over ``writers`` connections at once,
each table on one of them, so the server works while the client encodes, and on several vnodes.
With ``failes-to=<file>`` a table that fails is written to the file with its reason and the rest
carries on; otherwise the first failure stops the run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from ... import rawblock
from ...capabilities import SinkCapabilities
from ...dsn import Dsn
from ...errors import DataError, DsnError, SinkError, TaosError, Unreachable
from ...memo import ByIdentity
from ...model import Catalog, Column, SuperTable, TableBatch, TableSpec
from ...options import Options
from ...params import Param, Spec
from ...quality import TARGET_SITUATIONS, Rejects
from ...sink import Sink
from ...taos import ddl
from ...taos.catalog import describe, rows, table_names
from ...taos.conn import Connection
from ...taos.connect import open_connection
from ...taos.native import NativeConnection
from ...taos.params import TAOS_CONNECTION
from ...taos.stmt import MAX_ROWS as STMT_MAX_ROWS
from ...taos.stmt import StmtWriter
from ...taos.stmt2 import Stmt2Writer, bindable
from ...types import TDType
from . import checks
from .every import EveryDatabase
from .spool import Spool, default_dir, target_key

log = logging.getLogger("tdetl.taos")

CONFLICT_WAIT = 30.0  # seconds a DDL statement waits out other clients' transactions
MANY_ROWS = 4096  # a child table with at most this many rows in a flush is written with others (stmt2) ...
MANY_TABLES = 256  # ... this many tables per call (native client only)
_SIZE_ERRORS = ("wal size exceeds limit", "exceed", "too large", "too big", "msg too long")


def _is_size_error(e: TaosError) -> bool:
    return (e.code & 0xFFFF) == 0x002B or any(s in e.message.lower() for s in _SIZE_ERRORS)


class TaosSink(Sink):
    requires: ClassVar[dict[str, str]] = {"websockets": "taos"}  # module -> the extra that installs it
    capabilities = SinkCapabilities(upserts=True, raw=True, situations=TARGET_SITUATIONS)
    protocols = (None, "ws", "wss", "http", "https")
    spec = Spec(
        Param("assert", "flag", False, "create the database if missing, with the source database's options"),
        Param("failes-to", "text", None, "a table that fails goes to this file with its reason; the run carries on"),
        Param("max-sql-length", "int", ddl.DEFAULT_MAX_SQL, "limit for batched CREATE TABLE and INSERT text",
              minimum=1024),
        Param("batch-size", "int", 0, "rows per raw block / stmt batch (0: no limit)", minimum=0),
        Param("interval", "duration", 0.0, "pause after each table write"),
        Param("update-tags", "flag", False, "set tag values of child tables that already exist"),
        Param("force-stmt", "flag", False, "bind parameters instead of raw blocks"),
        Param("timeout-per-table", "duration", 0.0, "a table whose writes take longer in total fails"),
        Param("block-bytes", "int", rawblock.DEFAULT_MAX_BYTES, "raw-block size limit", minimum=4096),
        Param("buffer-bytes", "int", 64 << 20, "how much to buffer before writing", minimum=1),
        Param("writers", "int", 4, "connections writing raw blocks at once", minimum=1),
        *TAOS_CONNECTION)

    def __new__(cls, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> Any:
        """``taos://host:port`` with no database: each of the source's databases into its namesake."""
        if cls is TaosSink and not dsn.object.strip("/"):
            return EveryDatabase(dsn, options, rejects, cls.spec, TaosSink)
        return super().__new__(cls)

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        obj = dsn.object.strip("/")
        self.db, _, self.rename = obj.partition(".")
        cfg = self.config
        self.create_db = cfg["assert"]
        self.rows_per_block = cfg["batch-size"]
        self.pause = cfg["interval"]
        self.max_sql = cfg["max-sql-length"]
        self.failes_to = Path(cfg["failes-to"]) if cfg["failes-to"] else None
        self.update_tags = cfg["update-tags"]
        self.block_bytes = cfg["block-bytes"]
        self.buffer_bytes = cfg["buffer-bytes"]
        self.force_stmt = cfg["force-stmt"]
        self.table_timeout = cfg["timeout-per-table"]
        self.spent: dict[str, float] = {}
        self.stmt: StmtWriter | None = None  # force-stmt
        self.conn: Connection | None = None
        self.writers: list[_Writer] = []  # writers[0] uses self.conn
        self.pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # spent, failed and the failes-to file, shared by the writers
        self._cols: dict[str, tuple[Any, Any, tuple[Column, ...]]] = {}
        self._targets: ByIdentity[TableSpec] = ByIdentity()
        self.precision = "ms"
        self.stables: dict[str, SuperTable] = {}
        self.normals: dict[str, tuple[Column, ...]] = {}  # normal tables: their columns in the target
        self.tables: set[str] = set()
        self.existing: tuple[set[str], set[str]] = (set(), set())  # super and normal tables before the run
        self.server_defined: set[str] = set()  # super tables that existed: their widths are the server's
        self.failed: dict[str, str] = {}
        self.keep: int | None = None  # the database's retention in seconds: older rows are refused
        self.present: set[str] = set()  # with table-missing=error: the tables the target holds
        self.spool: Spool | None = None  # batches waiting on disk: this run's (unreachable=cache) or earlier runs'
        self.caching = False  # unreachable=cache: batches the target cannot take go to the spool
        self._pending: list[TableBatch] = []
        self._bytes = 0

    # -- setup ----------------------------------------------------------------------------------

    def prepare(self, catalog: Catalog) -> None:
        self.conn = open_connection(self.dsn)
        if self.create_db:
            dbs = list(catalog.databases.values())
            src = catalog.databases.get(self.db) or (dbs[0] if len(dbs) == 1 else None)
            precision = src.precision if src else next((st.precision for st in catalog.stables.values()),
                                                       catalog.precision)
            self._sql(ddl.create_database(self.db, src.options if src else {}, precision))
        try:
            self.conn.execute(f"USE {ddl.ident(self.db)}")
        except TaosError as e:
            hint = "" if self.create_db else " (add ?assert to create it)"
            raise SinkError(f"{self.dsn.masked()}: database {self.db!r} cannot be used: {e.message}{hint}") from None
        self.precision = self._database_precision() or "ms"
        self.keep = self._database_keep()
        self.writers = [_Writer(self.conn)]
        stables, normals = table_names(self.conn, self.db)
        self.existing = (set(stables), set(normals))
        if self.rejects.choice("table-missing") == "error":
            self.present = {str(r[0]) for r in rows(self.conn, "SELECT table_name FROM information_schema.ins_tables"
                                                    f" WHERE db_name = {ddl.literal(TDType('VARCHAR'), self.db)}")}
        known = [self._target(spec) for spec in catalog.tables.values()
                 if not checks.invalid_tag_names(spec)]  # the others wait for their rows (tag-invalid)
        if known:  # tables the source knows exist in the target even when no row of theirs arrives
            self._ensure_tables(known)
        self.caching = self.rejects.choice("unreachable") == "cache"
        chosen = self.rejects.strategies.setting("cache-dir")
        where = Path(chosen).expanduser() if chosen else default_dir(target_key(self.dsn, self.db))
        if self.caching or Spool(where, 0).waiting():  # any run into this target replays what waits
            self.spool = Spool(where, self.rejects.strategies.setting("cache-max-bytes"))
            if self.spool.waiting():  # an earlier run's, before anything of this one
                self._replay()
        if self.force_stmt:
            if not self.conn.raw_writes:
                raise DsnError(f"{self.dsn.masked()}: force-stmt needs taos:// or taos+ws://, not REST")
            self.stmt = StmtWriter(self.dsn, self.db, self.dsn.user or "root",
                                   self.dsn.password if self.dsn.password is not None else "taosdata",
                                   self.dsn.masked())

    # -- TMQ raw replication ----------------------------------------------------------------------

    def takes_raw(self, precision: str) -> bool:
        """Whether TMQ raw messages from a database of ``precision`` can be written as they are:
        native or WebSocket, no renaming, and a target database that is missing or alike."""
        if self.dsn.protocol not in (None, "ws", "wss") or self.rename or self.force_stmt:
            return False
        with open_connection(self.dsn) as conn:
            have = self._database_precision(conn)
        return have in (None, precision)

    def raw_connection(self) -> Connection:
        """A connection of its own to the target database, for one TMQ consumer's raw writes."""
        return open_connection(self.dsn, self.db)

    def raw_writers(self) -> int:
        return max(1, int(self.config.get("writers") or 4))

    def raw_database(self) -> str:
        return self.db

    def _database_precision(self, conn: Connection | None = None) -> str | None:
        conn = conn or self.conn
        assert conn is not None
        res = conn.query("SELECT `precision` FROM information_schema.ins_databases"
                              f" WHERE name = {ddl.literal(TDType('VARCHAR'), self.db)}")
        rows = res.table().column(0).to_pylist() if not res.is_update else []
        return str(rows[0]) if rows and rows[0] in ("ms", "us", "ns") else None

    def _database_keep(self) -> int | None:
        assert self.conn is not None
        try:
            found = rows(self.conn, "SELECT `keep` FROM information_schema.ins_databases"
                                    f" WHERE name = {ddl.literal(TDType('VARCHAR'), self.db)}")
        except TaosError:  # TDengine 2.x over REST has no information_schema: the server checks alone
            return None
        return checks.keep_seconds(found[0][0]) if found and found[0][0] is not None else None

    def _sql(self, sql: str) -> None:
        """DDL; asked again while another client's transaction on the same object is in flight
        (workers of a cluster run creating one super table), for up to ``CONFLICT_WAIT`` seconds."""
        assert self.conn is not None
        log.debug("%s", sql[:200])
        delay, deadline = 0.05, time.monotonic() + CONFLICT_WAIT
        while True:
            try:
                self.conn.execute(sql)
                return
            except TaosError as e:
                if not e.conflict or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    # -- data -----------------------------------------------------------------------------------

    def _target(self, spec: TableSpec) -> TableSpec:
        """The spec as the target names it; the same object for the same spec (asked per batch)."""
        known = self._targets.get(spec)
        if known is None:
            known = self._targets.put(spec, self._renamed(spec))
        return known

    def _renamed(self, spec: TableSpec) -> TableSpec:
        if not self.rename:
            return spec.replace(database=self.db)
        if spec.stable is not None:
            return spec.replace(database=self.db, stable=self.rename)
        return spec.replace(database=self.db, name=self.rename)

    def write(self, batch: TableBatch) -> None:
        self._pending.append(TableBatch(self._target(batch.spec), batch.data, batch.partition, batch.position))
        self._bytes += batch.nbytes

    def wants_flush(self) -> bool:
        return self._bytes >= self.buffer_bytes

    def flush(self, checkpoint: dict[str, Any] | None = None) -> None:
        pending, self._pending, self._bytes = self._pending, [], 0
        if self.spool is not None and self.spool.waiting() and not self._replay():
            if pending:  # still unreachable: newer batches wait behind the older ones (checked on replay)
                self._cache(pending)
            return
        if pending:
            self._deliver(pending)

    # -- unreachable: retry with back-off, or cache on disk and replay (tdetl.quality) -------------

    def _deliver(self, pending: list[TableBatch], replaying: bool = False) -> bool:
        """Write one flush. While the target does not answer: reconnect and retry with back-off until
        retry-for, then stop; or (cache) keep the batches on disk and return False."""
        checked: list[TableBatch] | None = None
        ready: list[TableBatch] | None = None
        delay, deadline = 0.5, time.monotonic() + self.rejects.strategies.setting("retry-for")
        while True:
            try:
                self._connected()
                checked = self._checked(pending) if checked is None else checked
                self._ensure_tables([b.spec for b in checked])
                ready = self._fitted(checked) if ready is None else ready
                self._write(ready)
                return True
            except (TaosError, Unreachable) as e:
                if isinstance(e, TaosError) and not e.unreachable:
                    raise
                self._disconnect()
                if self.spool is not None and self.caching:
                    if not replaying:
                        self._cache(ready if ready is not None else checked if checked is not None else pending)
                    return False
                if time.monotonic() + delay > deadline:
                    retried = self.rejects.strategies.setting("retry-for")
                    raise Unreachable(f"{e} (retried for {retried:g} s; --on unreachable=cache keeps"
                                      " batches on disk instead)") from None
                log.info("%s does not answer; retrying in %.1f s", self.dsn.masked(), delay)
                self.rejects.handle("unreachable", "retry", [], [], count=1)
                time.sleep(delay)
                delay = min(delay * 2, 8.0)

    def _cache(self, batches: list[TableBatch]) -> None:
        assert self.spool is not None
        self.spool.put(batches)
        rows = sum(b.num_rows for b in batches)
        self.rejects.handle("unreachable", "cache", [], [], count=rows)
        log.warning("%s does not answer: %d rows cached in %s", self.dsn.masked(), rows, self.spool.dir)

    def _replay(self) -> bool:
        """What waits in the cache, oldest first; False while the target still does not answer."""
        assert self.spool is not None
        for flush_dir in self.spool:
            batches = self.spool.read(flush_dir)
            if not self._deliver(batches, replaying=True):
                return False
            rows = sum(b.num_rows for b in batches)
            self.spool.done(flush_dir, rows)
            self.rejects.handle("unreachable", "replayed", [], [], count=rows)
            log.info("replayed %d cached rows into %s", rows, self.dsn.masked())
        return True

    def _connected(self) -> None:
        """After a connection was dropped for the target not answering, a new one."""
        if self.conn is None:
            self.conn = open_connection(self.dsn)
            self.conn.execute(f"USE {ddl.ident(self.db)}")
            self.writers = [_Writer(self.conn)]

    def _write(self, pending: list[TableBatch]) -> None:
        assert self.conn is not None
        as_sql = [b for b in pending if b.spec.name not in self.failed and self._needs_sql(b.spec)]
        raw = [b for b in pending if b.spec.name not in self.failed and not self._needs_sql(b.spec)]
        if raw:
            self._write_raw(raw)
        if as_sql and self.failes_to is None:  # many tables per statement
            self._guarded(as_sql[0].spec.name, lambda: self._write_sql(as_sql))
        else:
            for b in as_sql:
                self._guarded(b.spec.name, lambda b=b: self._write_sql([b]))

    def _checked(self, pending: list[TableBatch]) -> list[TableBatch]:
        """tag-invalid, ts-out-of-keep and field-not-in-stable (tdetl.quality), before tables are made."""
        where, out = self.dsn.masked(), []
        for b in pending:
            kept: TableBatch | None = checks.invalid_tags(b, self.rejects, where) if b.spec.tags else b
            if kept is not None and self.keep:
                kept = checks.out_of_keep(kept, self.keep, self.rejects, where)
            if kept is not None and kept.spec.stable is not None and self._stable(kept.spec.stable) is not None \
                    and kept.spec.stable in self.server_defined:
                st = self.stables[kept.spec.stable]
                kept = checks.extra_fields(kept, st.columns, st.tags, f"super table {st.name!r}", self.rejects, where)
            elif kept is not None and kept.spec.stable is None and kept.spec.name in self.existing[1]:
                kept = checks.extra_fields(kept, self._normal(kept.spec.name), (), "the existing normal table",
                                           self.rejects, where)
            if kept is not None:
                out.append(kept)
        return out

    def _fitted(self, pending: list[TableBatch]) -> list[TableBatch]:
        """value-too-long against the target's declared widths: truncate, drop or archive (widen
        altered the table already; error is the codec's, naming column and row)."""
        if self.rejects.choice("value-too-long") in ("error", "widen"):
            return pending
        out = []
        for b in pending:
            declared = self.stables[b.spec.stable].columns if b.spec.stable is not None else self.normals[b.spec.name]
            narrow = checks.wider_than(b.spec, declared)
            kept = checks.too_long_values(b, narrow, self.rejects, self.dsn.masked()) if narrow else b
            if kept is not None:
                out.append(kept)
        return out

    def _write_raw(self, batches: list[TableBatch]) -> None:
        """Each table's batches in order on one writer; small child tables many per call (stmt2);
        the work spread so the writers finish together."""
        by_table: dict[str, list[TableBatch]] = {}
        for b in batches:
            by_table.setdefault(b.spec.name, []).append(b)
        jobs: list[tuple[int, Callable[[_Writer], None]]] = []
        for cols, items in self._small_tables(by_table).items():
            for first in range(0, len(items), MANY_TABLES):
                chunk = items[first:first + MANY_TABLES]
                size = sum(b.nbytes for _, bs in chunk for b in bs)
                jobs.append((size, lambda w, cols=cols, chunk=chunk: self._write_many(w, cols, chunk)))
        for bs in by_table.values():
            jobs.append((sum(b.nbytes for b in bs), lambda w, bs=bs: self._write_table(w, bs)))
        n = 1 if self.stmt is not None else min(self.config["writers"], len(jobs))
        while len(self.writers) < n:
            self.writers.append(_Writer(open_connection(self.dsn, self.db)))
        groups: list[list[Callable[[_Writer], None]]] = [[] for _ in range(n)]
        load = [0] * n
        for size, job in sorted(jobs, key=lambda x: -x[0]):
            i = load.index(min(load))
            groups[i].append(job)
            load[i] += size

        def run(writer: _Writer, group: list[Callable[[_Writer], None]]) -> None:
            for job in group:
                job(writer)
        if n == 1:
            run(self.writers[0], groups[0])
            return
        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.config["writers"] - 1, thread_name_prefix="tdetl-writer")
        futures = [self.pool.submit(run, w, g) for w, g in zip(self.writers[1:n], groups[1:])]
        errors: list[BaseException] = []
        try:
            run(self.writers[0], groups[0])
        except BaseException as e:  # the others still finish their tables before flush reports
            errors.append(e)
        for f in futures:
            try:
                f.result()
            except BaseException as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def _write_table(self, writer: _Writer, batches: list[TableBatch]) -> None:
        for b in batches:
            if b.spec.name not in self.failed:
                self._guarded(b.spec.name, lambda b=b: self._write_one(b.spec, b.data, writer))

    def _small_tables(self, by_table: dict[str, list[TableBatch]]
                      ) -> dict[tuple[Column, ...], list[tuple[str, list[TableBatch]]]]:
        """Child tables few rows each, taken out of ``by_table`` and grouped by their columns, to go
        many per stmt2 call: a raw-block write is a round trip per table. Native only (taos-ws has
        no columnar stmt2 here), and not where each table's writes are timed or paced (timeout-per-table,
        interval)."""
        if self.stmt is not None or self.table_timeout or self.pause or not isinstance(self.conn, NativeConnection):
            return {}
        out: dict[tuple[Column, ...], list[tuple[str, list[TableBatch]]]] = {}
        for name, bs in list(by_table.items()):
            spec = bs[0].spec
            if spec.stable is None or name in self.failed or sum(b.num_rows for b in bs) > MANY_ROWS:
                continue
            cols = self._columns(spec)
            if bindable(cols) and all(b.spec.columns is spec.columns for b in bs):
                out.setdefault(cols, []).append((name, by_table.pop(name)))
        return out

    def _write_many(self, writer: _Writer, cols: tuple[Column, ...], items: list[tuple[str, list[TableBatch]]]) -> None:
        """Small tables in one stmt2 call; when a value does not fit or the server refuses the call,
        table by table as raw blocks instead (which name the table, column and row; rows the call
        wrote are written again alike)."""
        datas = [pa.concat_batches([b.data for b in bs]) if len(bs) > 1 else bs[0].data for _, bs in items]
        data = pa.concat_batches(datas) if len(datas) > 1 else datas[0]
        try:
            stmt = writer.stmt2(cols)
            if stmt.fits(data):
                stmt.write([n for n, _ in items], [d.num_rows for d in datas], data, self.precision)
                return
        except TaosError as e:
            if e.unreachable:
                raise Unreachable(f"{self.dsn.masked()}: {e.brief}{TaosError.RERUN_HINT}") from None
            log.info("%d tables in one stmt2 call refused (%s): writing them one by one", len(items), e.brief)
        for (name, bs), d in zip(items, datas):
            self._guarded(name, lambda spec=bs[0].spec, d=d: self._write_one(spec, d, writer))

    def _needs_sql(self, spec: TableSpec) -> bool:
        """REST cannot take raw blocks; a BLOB raw block crashes the 3.3.7.5 client (and taosAdapter),
        and stmt binds no BLOB (taospy has no binder, taosAdapter answers "unsupported type 18")."""
        assert self.conn is not None
        return not self.conn.raw_writes or any(c.type.name == "BLOB" for c in spec.columns)

    def _stable(self, name: str) -> SuperTable | None:
        """The super table as the target has it: this run's view, or the server's on first sight."""
        st = self.stables.get(name)
        if st is None and name in self.existing[0]:
            assert self.conn is not None
            cols, tags = describe(self.conn, self.db, name)
            st = self.stables[name] = SuperTable(self.db, name, cols, tags, self.precision)
            existed = self.shared.existed if self.shared is not None else None
            if existed is None or name in existed:
                self.server_defined.add(name)  # not one a cluster run's other worker made
        return st

    def _may_add(self, spec: TableSpec, columns: tuple[Column, ...], tags: tuple[Column, ...], table: str) -> bool:
        """field-not-in-stable for a table that existed before the run, seen in the catalog before
        any data: whether to add the columns and tags it lacks (add-column), or not (drop-field:
        the batches lose them); error stops before anything is written."""
        have = {c.name for c in (*columns, *tags)}
        lacking = [c.name for c in (*spec.columns, *spec.tags) if c.name not in have]
        if not lacking:
            return True
        choice = self.rejects.choice("field-not-in-stable")
        if choice == "error":
            self.rejects.handle("field-not-in-stable", "error", [
                f"{self.dsn.masked()}: table {spec.name!r}: {', '.join(map(repr, lacking))} not in {table}"], [])
        return choice == "add-column"

    def _normal(self, name: str) -> tuple[Column, ...]:
        """A normal table's columns as the target has them (one that existed before the run)."""
        have = self.normals.get(name)
        if have is None:
            assert self.conn is not None
            have = self.normals[name] = describe(self.conn, self.db, name)[0]
        return have

    def tables_before_run(self) -> frozenset[str]:
        return frozenset(self.existing[0])

    def _reconcile(self, want: SuperTable) -> None:
        """A cluster run's worker (``self.shared``): other workers create and widen the same super
        tables at the same time. Make it, then widen what the server has that is narrower than
        ``want`` (looking again when another worker changed it meanwhile); this worker's view is
        then the server's."""
        assert self.conn is not None
        self._sql(ddl.create_stable(want))
        for attempt in range(10):
            cols, tags = describe(self.conn, self.db, want.name)
            have = SuperTable(self.db, want.name, cols, tags, self.precision)
            stmts = ddl.alter_widths(want.name, have, want)
            if not stmts:
                self.stables[want.name] = have
                return
            try:
                for stmt in stmts:
                    self._sql(stmt)
            except TaosError:
                if attempt == 9:
                    raise
                time.sleep(0.05 * (attempt + 1))  # another worker's change came first: look again

    def _ensure_tables(self, specs: list[TableSpec]) -> None:
        grown: dict[str, SuperTable] = {}
        widen = self.rejects.choice("value-too-long") == "widen"
        create = self.rejects.choice("table-missing") == "create"
        for s in specs:
            if s.stable is not None:
                base = grown.get(s.stable) or self._stable(s.stable)
                if base is None:
                    if not create:
                        self._missing(s.stable, "super table")
                    grown[s.stable] = SuperTable(s.database, s.stable, s.columns, s.tags, s.precision)
                elif s.stable in self.server_defined and not self._may_add(s, base.columns, base.tags,
                                                                            f"super table {s.stable!r}"):
                    grown[s.stable] = base  # drop-field: the batches lose what the table lacks
                else:
                    keeps_widths = s.stable in self.server_defined and not widen
                    grown[s.stable] = base.extended(s) if keeps_widths else base.merged(s)
        for name, st in grown.items():
            old = self.stables.get(name)
            if self.shared is not None and (old is None or ddl.alter_widths(name, old, st)):
                self._reconcile(st)
                continue
            if old is None:
                self._sql(ddl.create_stable(st))
            else:
                for stmt in ddl.alter_widths(name, old, st):
                    self._sql(stmt)
            self.stables[name] = st
        clauses, new_children, added = [], [], []
        try:
            self._ensure_children(specs, create, clauses, new_children, added)
        except BaseException:  # not made after all: a retry makes them
            self.tables.difference_update(added)
            raise

    def _ensure_children(self, specs: list[TableSpec], create: bool, clauses: list[str],
                         new_children: list[TableSpec], added: list[str]) -> None:
        for s in specs:
            if s.name in self.tables:
                continue
            if not create and s.name not in self.present:
                self._missing(s.name, "table")
            self.tables.add(s.name)
            added.append(s.name)
            if s.stable is None:
                if s.name in self.existing[1]:
                    have = self._normal(s.name)
                    new = [c for c in s.columns if c.name not in {h.name for h in have}] \
                        if self._may_add(s, have, (), "the existing normal table") else []
                    for c in new:
                        self._sql(f"ALTER TABLE {ddl.ident(s.name)} ADD COLUMN {ddl.ident(c.name)}"
                                  f" {ddl.type_sql(c.type, s.name)}")
                    self.normals[s.name] = have + tuple(new)
                else:
                    self._sql(ddl.create_normal_table(s))
                    self.normals[s.name] = s.columns
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

    def _missing(self, name: str, what: str) -> None:
        """table-missing=error: stop before anything of the flush is written."""
        self.rejects.handle("table-missing", "error", [f"{self.dsn.masked()}: {what} {name!r} does not exist"
                                                       f" in database {self.db!r}"], [])

    def _columns(self, spec: TableSpec) -> tuple[Column, ...]:
        """The spec's columns with the types the target table declares (raw blocks must match them
        exactly; a value longer than the target's width is then refused naming column and row).
        The same tuple while neither changes, so the codec reuses its plan."""
        declared = self.stables[spec.stable].columns if spec.stable is not None else self.normals[spec.name]
        known = self._cols.get(spec.name)
        if known is not None and known[0] is spec.columns and known[1] is declared:
            return known[2]
        by_name = {c.name: c for c in declared}
        cols = tuple(by_name.get(c.name, c) for c in spec.columns)
        self._cols[spec.name] = (spec.columns, declared, cols)
        return cols

    def _guarded(self, table: str, write: Callable[[], None]) -> None:
        """Run one table's write; a failure stops the run, or with failes-to is recorded and skipped."""
        began = time.monotonic()
        try:
            write()
        except (TaosError, DataError) as e:
            reason = e.brief if isinstance(e, TaosError) else str(e)
            if isinstance(e, TaosError) and e.unreachable:  # every table would fail alike: stop
                raise Unreachable(f"{self.dsn.masked()}: table {table!r}: {reason}{TaosError.RERUN_HINT}") from None
            if self.failes_to is None:
                raise SinkError(f"{self.dsn.masked()}: table {table!r}: {reason}") from None
            with self._lock:
                self.failed[table] = reason
                with self.failes_to.open("a", encoding="utf-8") as fh:
                    fh.write(f"{table}\t{reason}\n")
            log.warning("table %s failed: %s", table, reason)
        finally:
            with self._lock:
                self.spent[table] = self.spent.get(table, 0.0) + time.monotonic() - began
        if self.pause:
            time.sleep(self.pause)

    def _check_time(self, table: str, began: float) -> None:
        """timeout-per-table: a table whose writes took longer in total fails (between blocks; a
        call already inside the client library is not interrupted)."""
        if self.table_timeout and self.spent.get(table, 0.0) + time.monotonic() - began > self.table_timeout:
            raise TaosError(0xFFFF, f"timeout-per-table={self.table_timeout:g}s exceeded", self.dsn.masked())

    def _write_one(self, spec: TableSpec, data: pa.RecordBatch, writer: _Writer) -> None:
        began = time.monotonic()
        cols = self._columns(spec)
        if self.stmt is not None:
            step = min(self.rows_per_block or data.num_rows, STMT_MAX_ROWS)
            for first in range(0, data.num_rows, step):
                self._check_time(spec.name, began)
                self.stmt.write(spec.name, cols, data.slice(first, step), self.precision)
            return
        self._write_blocks(writer, spec.name, cols, data, 0, data.num_rows, began)

    def _write_blocks(self, writer: _Writer, name: str, cols: tuple[Column, ...], data: pa.RecordBatch,
                      start: int, rows: int, began: float) -> None:
        ranges = rawblock.encode_ranges(data, cols, self.precision, self.block_bytes, writer.encoder,
                                        start, rows, self.rows_per_block)
        for first, n, block in ranges:
            self._check_time(name, began)
            try:
                writer.conn.write_block(name, block, cols)
            except TaosError as e:
                if not _is_size_error(e) or n == 1:
                    raise
                half = n // 2
                log.info("table %s: block of %d rows refused for size, splitting", name, n)
                self._write_blocks(writer, name, cols, data, first, half, began)
                self._write_blocks(writer, name, cols, data, first + half, n - half, began)

    def _write_sql(self, batches: list[TableBatch]) -> None:
        """INSERT text, many tables per statement, under max-sql-length."""
        from ...taos.insert import insert_statements, value_rows  # Polars: only BLOB tables and REST need it

        began = time.monotonic()
        items = ((b.spec.name, cols, value_rows(b.data, cols, self.precision))
                 for b in batches for cols in (self._columns(b.spec),))
        for stmt in insert_statements(items, self.max_sql):
            for b in batches:
                self._check_time(b.spec.name, began)
            self._sql(stmt)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._disconnect()
        if self.spool is not None and self.spool.waiting():
            log.warning("%s still does not answer: %d bytes wait in the write cache %s; the next run replays them",
                        self.dsn.masked(), self.spool.size(), self.spool.dir)
        if self.failed:
            log.warning("%d tables failed; see %s", len(self.failed), self.failes_to)

    def abort(self) -> None:
        self._pending.clear()
        self._disconnect()

    def pending(self) -> tuple[int, int]:
        if self.spool is None:
            return 0, 0
        waiting = self.spool.rows()
        return waiting, min(waiting, self.spool.spooled)  # replayed oldest first: this run's are the newest

    def _disconnect(self) -> None:
        if self.stmt is not None:
            self.stmt.close()
            self.stmt = None
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        for w in self.writers[1:]:
            w.close()
        if self.writers:
            for stmt in self.writers[0].statements.values():
                stmt.close()
        self.writers = []
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class _Writer:
    """One connection writing raw blocks, with its own reused encoder buffer (and its stmt2
    statements, one per column list)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.encoder = rawblock.Encoder()
        self.statements: dict[tuple[Column, ...], Stmt2Writer] = {}

    def stmt2(self, cols: tuple[Column, ...]) -> Stmt2Writer:
        stmt = self.statements.get(cols)
        if stmt is None:
            assert isinstance(self.conn, NativeConnection)
            stmt = self.statements[cols] = Stmt2Writer(self.conn, cols)
        return stmt

    def close(self) -> None:
        for stmt in self.statements.values():
            stmt.close()
        self.statements.clear()
        self.conn.close()
