"""Raw replication: TMQ messages written into TDengine as they were polled (``tmq_write_raw``).

Per consumer, one thread polls and commits (libtaos's consumer is used from one thread only) and
``writers`` threads write, each with its own connection to the target. A vgroup's messages always
go to the same writer, in order, so its meta (create / alter / drop) is applied before the data that
follows it; vgroups are written in parallel, and polling overlaps writing. A message's offset is
committed once it and every earlier message of its vgroup are written.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import TaosError
from ...progress import Progress, Summary
from ...taos import tmq_raw
from ...taos.conn import Connection
from ...taos.tmq import Consumer, Message
from .repair import altered_children

if TYPE_CHECKING:
    from .source import TmqSource

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
                rows, size, names = 0, len(msg.raw), set()
                if msg.raw_type in tmq_raw.DATA_TYPES:
                    blocks = tmq_raw.parse(msg.raw, rep.source.where)
                    rows, names = sum(b.rows for b in blocks), {b.table for b in blocks}
                try:
                    if msg.raw_type in tmq_raw.DATA_TYPES:
                        rep.source.write_raw(self.conn, msg)
                    else:
                        rep.write_meta(self.conn, msg)
                except TaosError as e:
                    raise TaosError(e.code, f"{e.message} (writing the {msg.kind} message of raw type"
                                    f" {msg.raw_type} from vgroup {msg.vgroup} at offset {msg.offset})",
                                    rep.target) from None
                self.consumer.drop_raw(msg)
                rep.written(msg, rows, size, names)
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
    def __init__(self, source: TmqSource, opener: Callable[[], Connection], writers: int, target: str,
                 summary: Summary) -> None:
        self.source, self.opener, self.writers, self.target = source, opener, max(1, writers), target
        self.summary = summary
        self.tables: set[str] = set()
        self.errors: list[BaseException] = []
        self.failed = threading.Event()
        self.ready = threading.Event()  # the target is prepared: writers may connect
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._meta_lock = threading.Lock()
        self._done: dict[str, list[Message]] = {}  # per consumer: written, not yet committed

    def write_meta(self, conn: Connection, msg: Message) -> None:
        """Meta goes one message at a time: every vgroup carries its own copy of a super table's
        create / alter, and the server refuses two at once ("Conflict transaction not completed")."""
        with self._meta_lock:
            for attempt in range(CONFLICT_RETRIES):
                try:
                    self.source.write_raw(conn, msg)
                    return
                except TaosError as e:
                    if e.code & 0xFFFF != CONFLICT or attempt == CONFLICT_RETRIES - 1:
                        raise
                    time.sleep(min(1.0, 0.05 * (attempt + 1)))

    def fail(self, e: BaseException) -> None:
        with self._lock:
            self.errors.append(e)
        self.failed.set()

    def written(self, msg: Message, rows: int, size: int, names: set[str]) -> None:
        with self._lock:
            self._done.setdefault(msg.owner, []).append(msg)
            self.summary.rows_read += rows
            self.summary.rows_written += rows
            if rows:
                self.summary.bytes_written += size
                self.tables.update(names)

    def consume(self, partition: str) -> None:
        """Poll, hand each message to its vgroup's writer, commit what the writers finished."""
        src = self.source
        consumer = None
        writers: list[_Writer] = []
        try:
            consumer = src.open_consumer(partition)  # subscribing takes a second or two: while the target is prepared
            while not self.ready.wait(0.1):
                if self.failed.is_set():
                    return
            writers = [_Writer(self, consumer, f"tdetl-tmq-write-{partition}-{i}") for i in range(self.writers)]
            for w in writers:
                w.start()
            route: dict[int, _Writer] = {}
            wait = min(src.poll_wait, src.idle) if src.idle is not None else src.poll_wait
            last_data = last_commit = time.monotonic()
            while not (src.stopped or self.failed.is_set()):
                now = time.monotonic()
                if now - last_commit >= COMMIT_EVERY:
                    self._commit(partition, consumer)
                    last_commit = now
                msg = consumer.poll(wait)
                now = time.monotonic()
                if msg is None:
                    if src.idle is not None and now - last_data >= src.idle:
                        break
                    continue
                last_data = now
                msg.owner = partition
                if msg.raw_type not in tmq_raw.DATA_TYPES and src.detached is not None:
                    src.detached.add(altered_children(consumer.json_meta(msg) or {}))
                w = route.get(msg.vgroup)
                if w is None:
                    w = route[msg.vgroup] = writers[len(route) % len(writers)]
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
            if consumer is not None:
                with self._lock:
                    left = self._done.pop(partition, [])
                for m in left:
                    consumer.release(m)
                src.close_consumer(partition)

    def _commit(self, partition: str, consumer: Consumer) -> None:
        with self._lock:
            done = self._done.pop(partition, [])
        if done:
            consumer.commit_all(done)

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
