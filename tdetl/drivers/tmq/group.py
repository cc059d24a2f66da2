"""The consumer group of a TMQ source: its members' lifecycle (one consumer per pipeline partition,
each used from its own thread), when an idle member may end the run, the lag, and at-least-once
offsets (a message is committed on its consumer's thread once the sink has made it durable)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ...dsn import Dsn
from ...errors import DsnError
from ...progress import Lag
from ...source import DONE
from ...taos.connect import open_consumer
from ...taos.consumer import Consumer, Message
from ...taos.ddl import literal
from ...types import TDType
from ..common.acks import Pending
from .lag import WalLag

log = logging.getLogger("tdetl.tmq")

POLL = 0.5  # seconds one poll waits at most

Ask = Callable[[str], list[dict[str, Any]]]  # a query on the source's connection, one at a time


def parse_offsets(text: str, where: str) -> dict[int, int]:
    """``2:10,3:0`` -> {2: 10, 3: 0}."""
    out: dict[int, int] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        vg, sep, off = item.partition(":")
        if not sep or not vg.strip().isdigit() or not off.strip().lstrip("-").isdigit():
            raise DsnError(f"{where}: offset item {item!r} is not <vgroup_id>:<offset>")
        out[int(vg)] = int(off)
    return out


class Group:
    def __init__(self, dsn: Dsn, name: str, client: str, reset: str, snapshot: bool, offsets: dict[int, int],
                 idle: float | None, ask: Ask) -> None:
        self.dsn, self.name, self.client, self.reset, self.snapshot = dsn, name, client, reset, snapshot
        self.where = dsn.masked()
        self.offsets = offsets
        self.idle = idle  # seconds without messages before a member may end (None: never)
        self.poll_wait = min(POLL, idle) if idle is not None else POLL
        self.topics: list[str] = []  # set once the source has found or made them
        self._ask = ask
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumers: dict[str, Consumer] = {}
        self._pending: Pending[Message] = Pending()
        self._ready: dict[str, list[Message]] = {}
        self._wal_lag = WalLag()
        self._earlier: set[str] = set()
        self._earlier_read = False
        self._earlier_lock = threading.Lock()
        self._waiting_logged = False
        self._handed_over = True  # False after an idle check found vgroups still held by an earlier consumer
        self.finished = False  # the run ended with everything acknowledged

    # -- membership -------------------------------------------------------------------------------

    def _holders(self) -> set[str]:
        """The consumers holding a vgroup of our topics in our group now ("" for one unassigned)."""
        names = ", ".join(literal(TDType("VARCHAR"), t) for t in self.topics)
        found = self._ask("SELECT consumer_id FROM information_schema.ins_subscriptions WHERE"
                          f" consumer_group = {literal(TDType('VARCHAR'), self.name)} AND topic_name IN ({names})")
        return {str(r.get("consumer_id") or "") for r in found}

    def _members(self) -> set[str]:
        """Every consumer the server counts in our group, holding vgroups or not: one killed before it
        was given any may still be given some when another's session times out."""
        found = self._ask("SELECT consumer_id FROM performance_schema.perf_consumers WHERE"
                          f" consumer_group = {literal(TDType('VARCHAR'), self.name)}")
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
                        self.where, self.name)
        if stale:
            self._handed_over = False
            return False
        if not self._handed_over:  # vgroups just came over: their first messages may take an idle period
            self._handed_over = True
            return False
        return True

    def open(self, partition: str) -> Consumer:
        """The consumer of ``partition`` (``consumer-<n>``), joined and, with ``offset=``, placed."""
        with self._earlier_lock:  # the group's consumers before this run's first joins
            if not self._earlier_read:
                self._earlier = self._members() | (self._holders() - {""})
                self._earlier_read = True
        consumer = open_consumer(self.dsn, self.topics, self.name, f"{self.client}-{partition.rsplit('-', 1)[-1]}",
                                 self.reset, self.snapshot)
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

    def close(self, partition: str) -> None:
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

    # -- offsets ----------------------------------------------------------------------------------

    def handed_on(self, partition: str, msg: Message) -> int:
        """``msg``'s data went downstream: its number, the position its last batch carries."""
        return self._pending.add(partition, msg)

    def acknowledge(self, checkpoint: dict[str, Any]) -> None:
        """What the sink made durable: committed by each consumer's thread at its next poll."""
        if checkpoint and all(pos == DONE for pos in checkpoint.values()):
            self.finished = True
        for partition, ready in self._pending.durable(checkpoint).items():
            with self._lock:
                self._ready.setdefault(partition, []).extend(ready)

    def commit_ready(self, partition: str, consumer: Consumer | None = None) -> None:
        """On the consumer's own thread: commit the last acknowledged message of each vgroup."""
        with self._lock:
            consumer = consumer or self._consumers.get(partition)
            ready = self._ready.pop(partition, []) if consumer is not None else []
        if ready:
            assert consumer is not None
            consumer.commit_all(ready)

    def close_all(self) -> None:
        """Stop: what is acknowledged is committed, the rest freed (read again next run)."""
        self._stop.set()
        with self._lock:
            consumers, self._consumers = dict(self._consumers), {}
        for partition, consumer in consumers.items():
            try:
                self.commit_ready(partition, consumer)
            except Exception as e:  # offsets not committed are read again next run
                log.warning("%s: offset commit failed (%s); those messages will be read again", partition, e)
            for m in self._pending.drop(partition):
                consumer.release(m)
            consumer.close()
