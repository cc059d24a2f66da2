"""``tmq://[user:pass@]host:6030/<db|db.stable|db.table>`` (native) and ``tmq+ws://…:6041/…``
(taosAdapter) as a source: a TDengine data subscription.

tdetl creates the topic it reads (``tdetl_<db>[_<table>][_meta]``, reused by reruns) unless
``topic=`` names existing ones. The consumer group defaults to a hash of source and target, so the
same command run again continues where the last one committed. ``--jobs N`` runs N consumers in
the group. Offsets are committed only after the sink has made what came before them durable
(at-least-once; TDengine keeps one row per table and timestamp, so a replay is harmless).

Into a TDengine target with ``with.meta`` (and no renames), messages are written as they came
(``tmq_write_raw``: create / alter / drop and data in order, the fastest replication there is).
Otherwise data messages are decoded into Arrow batches per child table, so every sink works.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from ...dsn import Dsn
from ...errors import ConfigError, DsnError, TaosError
from ...model import Catalog, Column, SuperTable, TableBatch, TableSpec, fit
from ...options import Options
from ...params import Param, Spec
from ...progress import Lag, Progress, Summary
from ...sink import Sink
from ...source import DONE, SCHEMA_TRAVELS, Source
from ...taos import catalog as taos_catalog
from ...taos import ddl, tmq_raw
from ...taos.catalog import records
from ...taos.conn import Connection
from ...taos.connect import open_connection
from ...taos.ddl import ident, literal
from ...taos.params import TAOS_CONNECTION
from ...taos.tmq import Consumer, Message, NativeConsumer, WsConsumer, consumer_config
from ...types import TDType
from ..common.acks import Pending
from . import topic as topics
from .lag import WalLag
from .repair import Detached, altered_children, copy_raw, mark_finished, warn_if_behind
from .replicate import Replication

if TYPE_CHECKING:
    from .subscription import Subscription

log = logging.getLogger("tdetl.tmq")

POLL = 0.5  # seconds one poll waits at most
TABLE_BY_TABLE = (0x0115, 0x2603)  # raw writes refused as "Invalid message", "Table does not exist"
REPAIR_EVERY = 30.0  # seconds between copies of tables a database topic stopped delivering (repair.py)


def parse_offsets(text: str, where: str) -> dict[int, int]:
    """``2:10,3:0`` -> {2: 10, 3: 0}."""
    out: dict[int, int] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        vg, sep, off = item.partition(":")
        if not sep or not vg.strip().isdigit() or not off.strip().lstrip("-").isdigit():
            raise DsnError(f"{where}: offset item {item!r} is not <vgroup_id>:<offset>")
        out[int(vg)] = int(off)
    return out


class TmqSource(Source):
    requires: ClassVar[dict[str, str]] = {"websockets": "taos"}  # module -> the extra that installs it
    protocols = (None, "ws", "wss")
    appends = True
    consumes = True
    quality_defaults = SCHEMA_TRAVELS
    spec = Spec(
        Param("group.id", "text", None, "consumer group (default: a hash of source and target, so a rerun"
              " resumes)", aliases=("group_id",)),
        Param("client.id", "text", "tdetl", "consumer client id", aliases=("client_id",)),
        Param("timeout", "duration", 0.5, "stop after this long without messages", unit="ms", never=True),
        Param("offset", "text", "", "start at <vgroup_id>:<offset>[,…] (WAL offsets: snapshot reading is off)"),
        Param("topic", "list", help="read these existing topics instead of tdetl's own"),
        Param("auto.offset.reset", "choice", "earliest", "where a group without committed offsets starts",
              choices=("earliest", "latest")),
        Param("experimental.snapshot.enable", "flag", True, "also read data already flushed out of the WAL"
              " (a full first copy)"),
        Param("with.meta", "flag", True, "subscribe with meta: create / alter / drop are replicated"),
        *TAOS_CONNECTION)

    def __init__(self, dsn: Dsn, options: Options) -> None:
        super().__init__(dsn, options)
        self.where = dsn.masked()
        self.db, _, self.sub = dsn.object.strip("/").partition(".")
        if not self.db:
            raise DsnError(f"{self.where}: name the database to subscribe to, e.g. tmq://host:6030/<db>")
        cfg = self.config
        self.idle: float | None = cfg["timeout"]
        self.offsets = parse_offsets(cfg["offset"] or "", self.where)
        self.snapshot = cfg["experimental.snapshot.enable"] and not self.offsets
        self.with_meta = cfg["with.meta"]
        # a rerun with other run parameters (timeout, …) is still the same subscription
        ends = f"{dsn.without_password().split('?')[0]} {sorted(cfg['topic'])} -> {options.target.split('?')[0]}"
        self.group = cfg["group.id"] or "tdetl-" + hashlib.sha1(ends.encode()).hexdigest()[:12]
        self.topics = list(cfg["topic"])
        self._conn: Connection | None = None
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()
        self._query_lock = threading.RLock()  # the source connection serves one query at a time (WebSocket)
        self._stop = threading.Event()
        self._consumers: dict[str, Consumer] = {}
        self._pending: Pending[Message] = Pending()
        self._wal_lag = WalLag()
        self._ready: dict[str, list[Message]] = {}
        self._specs: dict[str, TableSpec] = {}
        self.detached: Detached | None = None  # set for database topics (repair.py)
        self._target_db = ""  # raw replication: the target database
        self._stables: dict[str, tuple[tuple[Column, ...], tuple[Column, ...]]] = {}
        self._earlier: set[str] = set()
        self._earlier_read = False
        self._earlier_lock = threading.Lock()
        self._waiting_logged = False
        self._handed_over = True  # False after an idle check found vgroups still held by an earlier consumer
        self._finished = False  # the run ended with everything acknowledged

    # -- setup ----------------------------------------------------------------------------------

    def conn(self) -> Connection:
        if self._conn is None:
            self._conn = open_connection(self.dsn)
        return self._conn

    def catalog(self) -> Catalog:
        if self._catalog is None:
            conn = self.conn()
            retention = topics.check_database(conn, self.db, self.where)
            warn_if_behind(self.group, self.db, retention, self.where)
            if self.topics:
                topics.check_topics(conn, self.topics, self.where)
            else:
                self.topics = [topics.ensure_topic(conn, self.db, self.sub, self.with_meta, self.where)]
            if self.sub:
                try:
                    self._catalog = taos_catalog.read_catalog(conn, self.db, [self.sub], [], self.where)
                except ConfigError:
                    self._catalog = taos_catalog.read_catalog(conn, self.db, [], [self.sub], self.where)
            else:
                self._catalog = taos_catalog.read_catalog(conn, self.db, [], [], self.where)
            if topics.database_topics(conn, self.topics):
                self.detached = Detached(self.group, self.db, self._catalog.databases[self.db].precision)
        return self._catalog

    def describe(self) -> Catalog:
        return self.catalog()

    def partitions(self) -> list[str]:
        return [f"consumer-{i}" for i in range(max(1, self.options.jobs or 1))]

    def _holders(self) -> set[str]:
        """The consumers holding a vgroup of our topics in our group now ("" for one unassigned)."""
        names = ", ".join(literal(TDType("VARCHAR"), t) for t in self.topics)
        with self._query_lock:
            found = records(self.conn(), "SELECT consumer_id FROM information_schema.ins_subscriptions WHERE"
                                         f" consumer_group = {literal(TDType('VARCHAR'), self.group)}"
                                         f" AND topic_name IN ({names})")
        return {str(r.get("consumer_id") or "") for r in found}

    def _members(self) -> set[str]:
        """Every consumer the server counts in our group, holding vgroups or not: one killed before it
        was given any may still be given some when another's session times out."""
        with self._query_lock:
            found = records(self.conn(), "SELECT consumer_id FROM performance_schema.perf_consumers WHERE"
                                         f" consumer_group = {literal(TDType('VARCHAR'), self.group)}")
        return {str(r.get("consumer_id") or "") for r in found} - {""}

    def may_end(self) -> bool:
        """Whether an idle consumer may end the run: not while a vgroup is unassigned or still held
        by a consumer of the group from before this run (one killed keeps its vgroups until the
        server's session timeout, and no message can arrive from them until then)."""
        held = self._holders()
        stale = held & (self._earlier | {"", "0", "0x0"})
        if stale and not self._waiting_logged:
            self._waiting_logged = True
            log.warning("%s: group %s: waiting for the server to hand over vgroups still held by an earlier"
                        " consumer (one stopped without closing keeps them until its session times out)",
                        self.where, self.group)
        if stale:
            self._handed_over = False
            return False
        if not self._handed_over:  # vgroups just came over: their first messages may take an idle period
            self._handed_over = True
            return False
        return True

    def open_consumer(self, partition: str) -> Consumer:
        with self._earlier_lock:  # the group's consumers before this run's first joins
            if not self._earlier_read:
                self._earlier = self._members() | (self._holders() - {""})
                self._earlier_read = True
        d = self.dsn
        conf = consumer_config(d.user or "root", d.password if d.password is not None else "taosdata", d.host,
                               d.port, self.group, f"{self.config['client.id']}-{partition.rsplit('-', 1)[-1]}",
                               self.config["auto.offset.reset"], self.snapshot)
        if d.protocol is None:
            consumer: Consumer = NativeConsumer(conf, self.topics, d.get("libraryPath") or None,
                                                d.get("configDir") or None, self.where)
        else:
            url = f"{d.protocol}://{d.host or 'localhost'}:{d.port or 6041}/rest/tmq"
            token = d.get("token")
            if token:
                from urllib.parse import quote

                url += f"?token={quote(token)}"
            consumer = WsConsumer(url, conf, self.topics, 30.0, self.where)
        try:
            if self.offsets:
                self._seek(consumer)
        except BaseException:
            consumer.close()
            raise
        with self._lock:
            self._consumers[partition] = consumer
        return consumer

    def _seek(self, consumer: Consumer) -> None:
        for t in self.topics:
            have = {a.vgroup for a in consumer.assignment(t)}
            for vg, off in self.offsets.items():
                if vg not in have:
                    raise DsnError(f"{self.where}: offset={vg}:{off} names vgroup {vg}, which topic {t!r} does"
                                   f" not have (its vgroups: {', '.join(map(str, sorted(have))) or 'none'})")
                consumer.seek(t, vg, off)

    def close_consumer(self, partition: str) -> None:
        with self._lock:
            consumer = self._consumers.pop(partition, None)
        self._wal_lag.forget(partition)
        if consumer is not None:
            consumer.close()

    def note_lag(self, partition: str, consumer: Consumer, idle: bool) -> None:
        """After each poll, on the consumer's thread (at most once a second it asks the server)."""
        self._wal_lag.note(partition, consumer, self.topics, idle)

    def lag(self) -> Lag | None:
        return self._wal_lag.lag()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    poll_wait = POLL

    # -- decoded reading ------------------------------------------------------------------------

    def read(self, partition: str, start: Any = None) -> Iterator[TableBatch]:
        consumer = self.open_consumer(partition)
        last_data = last_repair = time.monotonic()
        repairs = partition == "consumer-0" and self.detached is not None
        reached: dict[str, int] = {}
        wait = min(POLL, self.idle) if self.idle is not None else POLL
        while not self._stop.is_set():
            self._commit_ready(partition, consumer)
            if repairs and time.monotonic() - last_repair >= REPAIR_EVERY:
                yield from self._repair_batches(partition)
                last_repair = time.monotonic()
            msg = consumer.poll(wait)
            self.note_lag(partition, consumer, msg is None)
            if msg is None:
                if self.idle is not None and time.monotonic() - last_data >= self.idle:
                    if not self.may_end():
                        last_data = time.monotonic()
                        continue
                    if repairs:
                        yield from self._repair_batches(partition)
                    return
                continue
            last_data = time.monotonic()
            if msg.offset >= 0:
                reached[f"{msg.topic}:{msg.vgroup}"] = msg.offset
            batches = self._decode(msg, consumer)
            consumer.drop_raw(msg)
            seq = self._pending.add(partition, msg)
            for i, b in enumerate(batches):  # the position: a sequence number, and the WAL offsets reached
                yield TableBatch(b.spec, b.data, partition,
                                 {"seq": seq, "offsets": dict(reached)} if i == len(batches) - 1 else None)

    def _decode(self, msg: Message, consumer: Consumer) -> list[TableBatch]:
        if msg.raw_type not in tmq_raw.DATA_TYPES:
            self._on_meta(msg, consumer)
            return []
        from ... import rawblock

        out = []
        for t in tmq_raw.parse(msg.raw, self.where):
            if t.rows <= 0:
                continue
            spec = self._spec(t.table, t.columns, t.precision)
            if spec is None:
                continue
            data = rawblock.decode(t.block, t.columns, t.precision)
            out.append(TableBatch(spec, fit(data, spec), "", None))
        return out

    def _repair_batches(self, partition: str) -> Iterator[TableBatch]:
        """The rows of tables the database topic stopped delivering, read by query."""
        assert self.detached is not None
        with self._query_lock:  # one query at a time on the source connection
            conn = self.conn()
            for table, sql, newest in list(self.detached.queries(conn)):
                spec = None
                res = conn.query(sql)
                for data in res.batches():
                    spec = spec or self._spec(table, tuple(res.fields), res.precision)
                    if spec is None:
                        break
                    yield TableBatch(spec, fit(data, spec), partition, None)
                self.detached.copied(table, newest)

    def _on_meta(self, msg: Message, consumer: Consumer) -> None:
        """Decoded reading follows schema and tag changes through the data's own schemas and fresh
        tag lookups: a meta message only invalidates what it changes."""
        doc = consumer.json_meta(msg) or {}
        if self.detached is not None:
            self.detached.add(altered_children(doc))
        for m in doc.get("metas", [doc]):
            name = m.get("tableName")
            if not name:
                continue
            with self._lock:
                self._specs.pop(name, None)
                if self._catalog is not None:  # what it was at the start is stale now: look it up again
                    self._catalog.tables.pop((self.db, name), None)
                if m.get("tableType") == "super":
                    self._stables.pop(name, None)
                    for k in [k for k, s in self._specs.items() if s.stable == name]:
                        self._specs.pop(k, None)

    def _spec(self, table: str, columns: tuple[Column, ...], precision: str) -> TableSpec | None:
        """The table as it is now (its super table's current columns, its current tags): rows
        written before a schema change are widened to it, so one table has one schema downstream.
        Looked up again when data carries a column the known schema lacks."""
        with self._lock:
            spec = self._specs.get(table)
        if spec is not None and _covers(spec.columns, columns):
            return spec
        if spec is None:
            spec = self.catalog().tables.get((self.db, table))
        if spec is None or not _covers(spec.columns, columns):
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
        with self._query_lock:
            return self._lookup_locked(table)

    def _lookup_locked(self, table: str) -> TableSpec | None:
        conn = self.conn()
        s = literal(TDType("VARCHAR"), table)
        found = records(conn, "SELECT stable_name FROM information_schema.ins_tables"
                              f" WHERE db_name = {literal(TDType('VARCHAR'), self.db)} AND table_name = {s}")
        if not found:
            return None
        st = found[0].get("stable_name")
        if not st:
            cols, _ = taos_catalog.describe(conn, self.db, table)
            return TableSpec(table, cols, self.db)
        cols, tags = self._stable_schema(st)
        names = ", ".join(ident(t.name) for t in tags)
        rows = taos_catalog.rows(conn, f"SELECT TAGS {names} FROM {ident(self.db)}.{ident(st)} WHERE tbname = {s}")
        if not rows:
            return None
        return TableSpec(table, cols, self.db, st, tags, tuple(rows[0]))

    # -- offsets --------------------------------------------------------------------------------

    def acknowledge(self, checkpoint: dict[str, Any]) -> None:
        if checkpoint and all(pos == DONE for pos in checkpoint.values()):
            self._finished = True
        for partition, ready in self._pending.durable(checkpoint).items():
            with self._lock:
                self._ready.setdefault(partition, []).extend(ready)

    def _commit_ready(self, partition: str, consumer: Consumer) -> None:
        """On the consumer's own thread: commit the last acknowledged message of each vgroup."""
        with self._lock:
            ready = self._ready.pop(partition, [])
        if ready:
            consumer.commit_all(ready)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            consumers, self._consumers = dict(self._consumers), {}
        for partition, consumer in consumers.items():
            try:
                self._commit_ready(partition, consumer)
            except Exception as e:  # offsets not committed are read again next run
                log.warning("%s: offset commit failed (%s); those messages will be read again", partition, e)
            for m in self._pending.drop(partition):
                consumer.release(m)
            consumer.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._finished:
            mark_finished(self.group)

    def subscription(self, auto_commit: bool = False) -> Subscription:
        """This source as ``tdetl.subscribe`` hands it out."""
        from .subscription import Subscription

        return Subscription(self, auto_commit)

    # -- raw replication ------------------------------------------------------------------------

    def direct_to(self, sink: Sink) -> Callable[[Summary, Progress], None] | None:
        opener = getattr(sink, "raw_connection", None)
        if opener is None or not self.with_meta or self.options.transforms:
            return None
        if not sink.takes_raw(self.catalog().databases[self.db].precision):  # type: ignore[attr-defined]
            log.info("%s: the target differs (renames, precision): decoded batches instead of raw", self.where)
            return None
        return lambda summary, progress: self._replicate(sink, opener, summary, progress)

    def _replicate(self, sink: Sink, opener: Callable[[], Connection], summary: Summary,
                   progress: Progress) -> None:
        cat = self.catalog()
        writers = int(getattr(sink, "config", {}).get("writers", 4) or 4)
        rep = Replication(self, opener, writers, sink.dsn.masked(), summary)
        rep.start(self.run_partitions())
        try:
            sink.prepare(Catalog(databases=dict(cat.databases)))
        except BaseException as e:
            rep.fail(e)
            raise
        self._target_db = str(getattr(sink, "db", ""))
        rep.ready.set()
        repair = (lambda: self._repair_raw(opener, summary)) if self.detached is not None else None
        rep.wait(progress, repair, REPAIR_EVERY)
        self._finished = True

    def write_raw(self, conn: Connection, msg: Message) -> None:
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
        db = literal(TDType("VARCHAR"), self._target_db)
        have = {r[0] for r in taos_catalog.rows(conn, f"SELECT table_name FROM information_schema.ins_tables"
                                                      f" WHERE db_name = {db}")}
        stables = {r[0] for r in taos_catalog.rows(conn, f"SELECT stable_name FROM information_schema.ins_stables"
                                                         f" WHERE db_name = {db}")}
        clauses = []
        for b in blocks:
            if b.table in have:
                continue
            spec = self._spec(b.table, b.columns, b.precision)
            if spec is None:
                continue
            if spec.stable is None:
                conn.execute(ddl.create_normal_table(spec))
            else:
                cols, tags = self._stable_schema(spec.stable)
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

    def _stable_schema(self, st: str) -> tuple[tuple[Column, ...], tuple[Column, ...]]:
        with self._lock:
            known = self._stables.get(st)
        if known is None:
            with self._query_lock:
                known = taos_catalog.describe(self.conn(), self.db, st)
            with self._lock:
                self._stables[st] = known
        return known

    def _repair_raw(self, opener: Callable[[], Connection], summary: Summary) -> None:
        assert self.detached is not None
        if not self.detached.tables:
            return
        with opener() as target, self._query_lock:
            n = copy_raw(self.detached, self.conn(), target)
        with self._lock:
            summary.rows_read += n
            summary.rows_written += n


def _covers(known: tuple[Column, ...], got: tuple[Column, ...]) -> bool:
    names = {c.name: c.type.type_id for c in known}
    return all(names.get(c.name) == c.type.type_id for c in got)
