"""Raw replication: TMQ messages written into TDengine as they were polled (``tmq_write_raw``).

Per consumer, one thread polls and commits (libtaos's consumer is used from one thread only) and
``writers`` threads write data messages, each with its own connection to the target, while the
next messages are polled:

- meta (create / alter / drop) is a barrier: the poller waits until every data message before it is
  written, then writes it itself, one at a time across consumers (every vgroup carries its own copy
  of a super table's create / alter, and the server refuses two at once);
- data read from the snapshot (the first copy) holds each row once, so it goes to whichever writer
  has least queued; data read from the WAL may rewrite a row, so a vgroup's WAL messages stay on one
  writer, in order, and wait for the snapshot data before them;
- offsets are committed for the longest prefix of polled messages that is written, so a crash at
  any moment replays only what was not yet committed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

from ...errors import TaosError
from ...progress import Progress, Summary
from ...taos import tmq_raw
from ...taos.conn import Connection
from ...taos.consumer import Consumer, Message
from .group import Group
from .repair import Detached, altered_children

log = logging.getLogger("tdetl.tmq")

COMMIT_EVERY = 1.0  # seconds between offset commits
QUEUE = 8  # messages waiting per writer
CONFLICT = 0x03D3  # another transaction on the same object is still running (the mnode's own, too)
CONFLICT_RETRIES = 40


class _Writer(threading.Thread):
    def __init__(self, rep: Replication, consumer: Consumer, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.rep, self.consumer = rep, consumer
        self.inbox: queue.Queue[Message | None] = queue.Queue(QUEUE)
        self.conn = rep.opener()

    def run(self) -> None:
        rep = self.rep
        try:
            while True:
                msg = self.inbox.get()
                if msg is None or rep.failed.is_set():
                    return
                rep.write(self.conn, self.consumer, msg)
        except BaseException as e:
            rep.fail(e)
        finally:
            self.conn.close()

    def put(self, msg: Message | None) -> None:
        """Hand on a message (dropped once the replication failed), or None: the end, always
        delivered (making room when the writer has stopped)."""
        while True:
            if self.rep.failed.is_set():
                if msg is not None:
                    return
                while True:
                    try:
                        self.inbox.get_nowait()
                    except queue.Empty:
                        break
            try:
                self.inbox.put(msg, timeout=0.1)
                return
            except queue.Full:
                continue


class Replication:
    def __init__(self, group: Group, write_raw: Callable[[Connection, Message], None], detached: Detached | None,
                 opener: Callable[[], Connection], writers: int, target: str, summary: Summary) -> None:
        self.group, self.write_raw, self.detached = group, write_raw, detached
        self.opener, self.writers, self.target = opener, max(1, writers), target
        self.summary = summary
        self.tables: set[str] = set()
        self.errors: list[BaseException] = []
        self.failed = threading.Event()
        self.ready = threading.Event()  # the target is prepared: writers may connect
        self._threads: list[threading.Thread] = []
        self._lock = threading.Condition()
        self._meta_lock = threading.Lock()
        self._polled: dict[str, deque[Message]] = {}  # per consumer, in poll order, until committed
        self._written: set[int] = set()  # id() of polled messages already written
        self._inflight: dict[str, int] = {}  # per consumer: data messages handed to writers, not written

    # -- writing --------------------------------------------------------------------------------

    def write(self, conn: Connection, consumer: Consumer, msg: Message) -> None:
        rows, size, names = 0, len(msg.raw), set()
        if msg.raw_type in tmq_raw.DATA_TYPES:
            blocks = tmq_raw.parse(msg.raw, self.group.where)
            rows, names = sum(b.rows for b in blocks), {b.table for b in blocks}
        try:
            if msg.raw_type in tmq_raw.DATA_TYPES:
                self.write_raw(conn, msg)
            else:
                self._write_meta(conn, msg)
        except TaosError as e:
            raise TaosError(e.code, f"{e.message} (writing the {msg.kind} message of raw type {msg.raw_type}"
                            f" from vgroup {msg.vgroup} at offset {msg.offset})", self.target) from None
        consumer.drop_raw(msg)
        with self._lock:
            self._written.add(id(msg))
            if msg.raw_type in tmq_raw.DATA_TYPES:
                self._inflight[msg.owner] -= 1
                self._lock.notify_all()
            self.summary.rows_read += rows
            self.summary.rows_written += rows
            if rows:
                self.summary.bytes_written += size
                self.tables.update(names)

    def copied(self, rows: int) -> None:
        """Rows copied by query (tables a database topic stopped delivering: repair.py)."""
        with self._lock:
            self.summary.rows_read += rows
            self.summary.rows_written += rows

    def _write_meta(self, conn: Connection, msg: Message) -> None:
        with self._meta_lock:
            for attempt in range(CONFLICT_RETRIES):
                try:
                    self.write_raw(conn, msg)
                    return
                except TaosError as e:
                    if e.code & 0xFFFF != CONFLICT or attempt == CONFLICT_RETRIES - 1:
                        raise
                    time.sleep(min(1.0, 0.05 * (attempt + 1)))

    def _drain(self, partition: str) -> None:
        """Wait until every data message this consumer handed on is written (before a meta)."""
        with self._lock:
            while self._inflight.get(partition, 0) and not self.failed.is_set():
                self._lock.wait(0.1)

    def fail(self, e: BaseException) -> None:
        with self._lock:
            self.errors.append(e)
            self._lock.notify_all()
        self.failed.set()

    # -- consuming ------------------------------------------------------------------------------

    def consume(self, partition: str) -> None:
        group = self.group
        consumer = None
        writers: list[_Writer] = []
        meta_conn: Connection | None = None
        try:
            consumer = group.open(partition)  # subscribing takes a second or two: while the target is prepared
            while not self.ready.wait(0.1):
                if self.failed.is_set():
                    return
            meta_conn = self.opener()
            writers = [_Writer(self, consumer, f"tdetl-tmq-write-{partition}-{i}") for i in range(self.writers)]
            for w in writers:
                w.start()
            with self._lock:
                self._polled[partition] = deque()
                self._inflight[partition] = 0
            route: dict[int, _Writer] = {}
            snapshot = False  # snapshot data may be in flight
            wait = group.poll_wait
            last_data = last_commit = time.monotonic()
            while not (group.stopped or self.failed.is_set()):
                now = time.monotonic()
                if now - last_commit >= COMMIT_EVERY:
                    self._commit(partition, consumer)
                    last_commit = now
                msg = consumer.poll(wait)
                group.note_lag(partition, consumer, msg is None)
                now = time.monotonic()
                if msg is None:
                    if group.idle is not None and now - last_data >= group.idle:
                        if group.may_end():
                            break
                        last_data = now
                    continue
                last_data = now
                msg.owner = partition
                with self._lock:
                    self._polled[partition].append(msg)
                if msg.raw_type not in tmq_raw.DATA_TYPES:
                    if self.detached is not None:
                        self.detached.add(altered_children(consumer.json_meta(msg) or {}))
                    self._drain(partition)
                    self.write(meta_conn, consumer, msg)
                    continue
                if msg.offset < 0:  # snapshot data: each row once, any writer
                    w = min(writers, key=lambda x: x.inbox.qsize())
                    snapshot = True
                else:
                    if snapshot:  # WAL data may rewrite a snapshot row: the snapshot lands first
                        self._drain(partition)
                        snapshot = False
                    w = route.get(msg.vgroup) or route.setdefault(msg.vgroup, writers[len(route) % len(writers)])
                with self._lock:
                    self._inflight[partition] += 1
                w.put(msg)
            for w in writers:
                w.put(None)
            for w in writers:
                w.join()
            if not self.failed.is_set():
                self._commit(partition, consumer)
        except BaseException as e:
            self.fail(e)
        finally:
            for w in writers:
                if w.is_alive():
                    w.put(None)
                    w.join(timeout=30)
            if meta_conn is not None:
                meta_conn.close()
            if consumer is not None:
                with self._lock:
                    left = list(self._polled.pop(partition, ()))
                for m in left:
                    consumer.release(m)
                group.close(partition)

    def _commit(self, partition: str, consumer: Consumer) -> None:
        """Commit the written prefix of what this consumer polled."""
        prefix: list[Message] = []
        with self._lock:
            polled = self._polled.get(partition)
            while polled and id(polled[0]) in self._written:
                m = polled.popleft()
                self._written.discard(id(m))
                prefix.append(m)
        if prefix:
            consumer.commit_all(prefix)

    # -- running --------------------------------------------------------------------------------

    def start(self, partitions: list[str]) -> None:
        self._threads = [threading.Thread(target=self.consume, args=(p,), name=f"tdetl-tmq-{p}", daemon=True)
                         for p in partitions]
        for t in self._threads:
            t.start()

    def wait(self, progress: Progress, repair: Callable[[], None] | None, repair_every: float) -> None:
        """Until every consumer has finished; copies what repair.py must copy on the way."""
        threads = self._threads
        last_repair = time.monotonic()
        try:
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(timeout=0.25)
                progress.update()
                if repair is not None and time.monotonic() - last_repair >= repair_every and not self.errors:
                    repair()
                    last_repair = time.monotonic()
            if repair is not None and not self.errors:
                repair()
        except BaseException:
            self.failed.set()
            raise
        self.summary.tables = len(self.tables)
        if self.errors:
            raise self.errors[0]
