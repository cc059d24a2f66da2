"""WAL entries a subscription is behind its vgroups' ends, for ``tdetl serve``'s lag.

The server's assignment gives each vgroup's consumed offset and WAL end, but the WAL also holds
entries no consumer is ever handed (offset commits among them), so a consumer that has caught up
still sits a few entries short of the end. Empty polls a second apart that find a vgroup's offset
and end unchanged prove everything up to that end was seen (one empty poll alone does not: a vnode
slow to answer looks the same): that end is kept as reached, and only entries beyond it count.
"""

from __future__ import annotations

import logging
import threading
import time

from ...progress import Lag
from ...taos.consumer import Consumer

log = logging.getLogger(__name__)

EVERY = 1.0  # seconds between assignment requests per consumer (each asks every vnode)


class WalLag:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._behind: dict[str, int] = {}  # consumer (pipeline partition) -> entries behind
        self._reached: dict[tuple[str, int], int] = {}  # (topic, vgroup) -> WAL end proven seen
        self._idle: dict[tuple[str, int], tuple[int, int]] = {}  # (topic, vgroup) -> (offset, end) at an empty poll
        self._asked: dict[str, float] = {}

    def note(self, partition: str, consumer: Consumer, topics: list[str], idle: bool) -> None:
        """On the consumer's own thread, right after a poll (``idle``: it came back empty)."""
        now = time.monotonic()
        if now - self._asked.get(partition, 0.0) < EVERY:
            return
        self._asked[partition] = now
        behind = 0
        try:
            for topic in topics:
                for a in consumer.assignment(topic):
                    key = (topic, a.vgroup)
                    with self._lock:
                        if idle:
                            if self._idle.get(key) == (a.current, a.end):
                                self._reached[key] = a.end
                            self._idle[key] = (a.current, a.end)
                        seen = max(a.current + 1, self._reached.get(key, 0))
                    behind += max(0, a.end - seen)
        except Exception as e:  # a snapshot being read has no assignment ("Can not operate in snapshot mode")
            log.debug("%s: no assignment for the lag (%s)", partition, e)
            with self._lock:
                self._behind.pop(partition, None)
            return
        with self._lock:
            self._behind[partition] = behind

    def forget(self, partition: str) -> None:
        with self._lock:
            self._behind.pop(partition, None)
            self._asked.pop(partition, None)

    def lag(self) -> Lag | None:
        with self._lock:
            return Lag(float(sum(self._behind.values())), "offsets") if self._behind else None
