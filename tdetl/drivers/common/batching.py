"""Micro-batching of items another thread delivers (MQTT messages, OPC UA notifications): a batch
is cut when it holds ``size`` items or its first item has waited ``timeout`` seconds, and the run
ends after ``idle`` seconds without an item."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

TICK = 0.005  # how often an empty inbox is looked at: never spin, the delivering thread needs the GIL


class Inbox:
    """A queue the delivering thread appends to without locking (``deque.append`` is atomic)."""

    def __init__(self, size: int, timeout: float, idle: float | None) -> None:
        self.items: deque[Any] = deque()
        self.size, self.timeout, self.idle = size, timeout, idle

    def batches(self, stop: threading.Event, *, present: Callable[[], bool] = lambda: True,
                on_quiet: Callable[[list[Any], float], bool] | None = None) -> Iterator[list[Any]]:
        """Yield batches until ``stop`` is set or nothing has come for ``idle`` seconds.

        ``present()`` is asked on every empty tick (it may raise the delivering side's error); while
        it is False the idle clock stands still, since nothing can come. ``on_quiet(batch, quiet)``
        is asked on every empty tick with the seconds since the last item: True hands the batch
        over now (a broker waiting for our acknowledgements sends nothing more until it has them)."""
        items, size = self.items, self.size
        got: list[Any] = []
        first = last = time.monotonic()
        while not stop.is_set():
            take = min(len(items), size - len(got))
            now = time.monotonic()
            if take:
                if not got:
                    first = now
                got.extend(items.popleft() for _ in range(take))
                last = now
            elif not present():
                last = now
            idle = self.idle is not None and now - last >= self.idle
            cut = idle or len(got) >= size or (bool(got) and now - first >= self.timeout)
            if not take and on_quiet is not None:
                cut = on_quiet(got, now - last) or cut
            if got and cut:
                yield got
                got = []
            elif idle:
                return
            elif not take:
                time.sleep(TICK)
