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
from typing import Any, ClassVar, cast

from ...capabilities import SourceCapabilities
from ...dsn import Dsn
from ...errors import ConfigError, DsnError
from ...model import Catalog, TableBatch, fit
from ...options import Options
from ...params import Param, Spec
from ...progress import Lag, Progress, Summary
from ...quality import Rejects
from ...sink import RawTarget, Sink
from ...source import SCHEMA_TRAVELS, Source
from ...taos import catalog as taos_catalog
from ...taos import tmq_raw
from ...taos.catalog import records
from ...taos.conn import Connection
from ...taos.connect import open_connection
from ...taos.consumer import Consumer, Message
from ...taos.params import TAOS_CONNECTION
from . import topic as topics
from .group import Group, parse_offsets
from .raw_write import RawWriter
from .repair import Detached, altered_children, copy_raw, mark_finished, warn_if_behind
from .replicate import Replication
from .schemas import Schemas

log = logging.getLogger("tdetl.tmq")

REPAIR_EVERY = 30.0  # seconds between copies of tables a database topic stopped delivering (repair.py)


class TmqSource(Source):
    requires: ClassVar[dict[str, str]] = {"websockets": "taos"}  # module -> the extra that installs it
    protocols = (None, "ws", "wss")
    capabilities = SourceCapabilities(partitions="consumers", consumer=True, appends=True, raw=True)
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

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        self.where = dsn.masked()
        self.db, _, self.sub = dsn.object.strip("/").partition(".")
        if not self.db:
            raise DsnError(f"{self.where}: name the database to subscribe to, e.g. tmq://host:6030/<db>")
        cfg = self.config
        offsets = parse_offsets(cfg["offset"] or "", self.where)
        self.with_meta = cfg["with.meta"]
        # a rerun with other run parameters (timeout, …) is still the same subscription
        ends = f"{dsn.without_password().split('?')[0]} {sorted(cfg['topic'])} -> {options.target.split('?')[0]}"
        name = cfg["group.id"] or "tdetl-" + hashlib.sha1(ends.encode()).hexdigest()[:12]
        self._conn: Connection | None = None
        self._catalog: Catalog | None = None
        self._query_lock = threading.RLock()  # the source connection serves one query at a time (WebSocket)
        self.group = Group(dsn, name, cfg["client.id"], cfg["auto.offset.reset"],
                           cfg["experimental.snapshot.enable"] and not offsets, offsets, cfg["timeout"], self._ask)
        self.group.topics = list(cfg["topic"])
        self.schemas = Schemas(self.db, self.conn, self.catalog, self._query_lock)
        self.detached: Detached | None = None  # set for database topics (repair.py)

    def conn(self) -> Connection:
        if self._conn is None:
            self._conn = open_connection(self.dsn)
        return self._conn

    def _ask(self, sql: str) -> list[dict[str, Any]]:
        with self._query_lock:
            return records(self.conn(), sql)

    def catalog(self) -> Catalog:
        if self._catalog is None:
            conn, group = self.conn(), self.group
            retention = topics.check_database(conn, self.db, self.where)
            warn_if_behind(group.name, self.db, retention, self.where)
            if group.topics:
                topics.check_topics(conn, group.topics, self.where)
            else:
                group.topics = [topics.ensure_topic(conn, self.db, self.sub, self.with_meta, self.where)]
            if self.sub:
                try:
                    self._catalog = taos_catalog.read_catalog(conn, self.db, [self.sub], [], self.where)
                except ConfigError:
                    self._catalog = taos_catalog.read_catalog(conn, self.db, [], [self.sub], self.where)
            else:
                self._catalog = taos_catalog.read_catalog(conn, self.db, [], [], self.where)
            if topics.database_topics(conn, group.topics):
                self.detached = Detached(group.name, self.db, self._catalog.databases[self.db].precision)
        return self._catalog

    def partitions(self) -> list[str]:
        return [f"consumer-{i}" for i in range(max(1, self.options.jobs or 1))]

    def lag(self) -> Lag | None:
        return self.group.lag()

    # -- decoded reading ------------------------------------------------------------------------

    def read(self, partition: str, start: Any = None) -> Iterator[TableBatch]:
        group = self.group
        consumer = group.open(partition)
        last_data = last_repair = time.monotonic()
        repairs = partition == "consumer-0" and self.detached is not None
        reached: dict[str, int] = {}
        while not group.stopped:
            group.commit_ready(partition, consumer)
            if repairs and time.monotonic() - last_repair >= REPAIR_EVERY:
                yield from self._repair_batches(partition)
                last_repair = time.monotonic()
            msg = consumer.poll(group.poll_wait)
            group.note_lag(partition, consumer, msg is None)
            if msg is None:
                if group.idle is not None and time.monotonic() - last_data >= group.idle:
                    if not group.may_end():
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
            seq = group.handed_on(partition, msg)
            for i, b in enumerate(batches):  # the position: a sequence number, and the WAL offsets reached
                yield TableBatch(b.spec, b.data, partition,
                                 {"seq": seq, "offsets": dict(reached)} if i == len(batches) - 1 else None)

    def _decode(self, msg: Message, consumer: Consumer) -> list[TableBatch]:
        if msg.raw_type not in tmq_raw.DATA_TYPES:
            # decoded reading follows schema and tag changes through the data's own schemas and fresh
            # tag lookups: a meta message only invalidates what it changes
            doc = consumer.json_meta(msg) or {}
            if self.detached is not None:
                self.detached.add(altered_children(doc))
            self.schemas.changed(doc)
            return []
        from ... import rawblock

        out = []
        for t in tmq_raw.parse(msg.raw, self.where):
            if t.rows <= 0:
                continue
            spec = self.schemas.spec(t.table, t.columns, t.precision)
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
                    spec = spec or self.schemas.spec(table, tuple(res.fields), res.precision)
                    if spec is None:
                        break
                    yield TableBatch(spec, fit(data, spec), partition, None)
                self.detached.copied(table, newest)

    # -- offsets --------------------------------------------------------------------------------

    def acknowledge(self, checkpoint: dict[str, Any]) -> None:
        self.group.acknowledge(checkpoint)

    def commit(self, partition: str) -> None:
        """Commit what is acknowledged of ``partition`` now (on the thread that reads it)."""
        self.group.commit_ready(partition)

    def close(self) -> None:
        self.group.close_all()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.group.finished:
            mark_finished(self.group.name)

    # -- raw replication ------------------------------------------------------------------------

    def direct_to(self, sink: Sink) -> Callable[[Summary, Progress, list[str]], None] | None:
        if not sink.capabilities.raw or not self.with_meta or self.options.transforms:
            return None
        target = cast(RawTarget, sink)
        if not target.takes_raw(self.catalog().databases[self.db].precision):
            log.info("%s: the target differs (renames, precision): decoded batches instead of raw", self.where)
            return None
        return lambda summary, progress, partitions: self._replicate(sink, target, summary, progress, partitions)

    def _replicate(self, sink: Sink, target: RawTarget, summary: Summary, progress: Progress,
                   partitions: list[str]) -> None:
        cat = self.catalog()
        writer = RawWriter(self.schemas, self.where)
        rep = Replication(self.group, writer.write, self.detached, target.raw_connection, target.raw_writers(),
                          sink.dsn.masked(), summary)
        rep.start(partitions)
        try:
            sink.prepare(Catalog(databases=dict(cat.databases)))
        except BaseException as e:
            rep.fail(e)
            raise
        writer.target_db = target.raw_database()
        rep.ready.set()
        repair = (lambda: self._repair_raw(target.raw_connection, rep.copied)) if self.detached is not None else None
        rep.wait(progress, repair, REPAIR_EVERY)
        self.group.finished = True

    def _repair_raw(self, opener: Callable[[], Connection], copied: Callable[[int], None]) -> None:
        assert self.detached is not None
        if not self.detached.tables:
            return
        with opener() as target, self._query_lock:
            copied(copy_raw(self.detached, self.conn(), target))
