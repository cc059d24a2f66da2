"""Reading ahead on a thread of its own, so a source's fetch goes on while the pipeline flushes:
the pipeline's queue holds a few batches, and a source that turns each fetched piece into a hundred
child-table batches would otherwise wait through every flush (reading and writing one after the
other instead of at once). For readers that work outside the GIL (ADBC, ConnectorX, Polars)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_END = object()


def offer(q: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put ``item`` into the bounded ``q``, waiting for room until ``stop`` is set (False then)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def ahead(items: Iterator[T], depth: int = 4, name: str = "tdetl-ahead") -> Iterator[T]:
    """``items``, produced up to ``depth`` ahead. An error in the producer is raised here; closing
    this generator stops the producer and waits for it, so whatever ``items`` holds (a cursor, a
    connection) is released before the caller goes on."""
    q: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[object, BaseException | None]) -> bool:
        return offer(q, item, stop)

    def produce() -> None:
        try:
            for x in items:
                if not put((x, None)):
                    return
            put((_END, None))
        except BaseException as e:  # handed to the consumer, which raises it
            put((_END, e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            x, err = q.get()
            if x is _END:
                if err is not None:
                    raise err
                return
            yield x  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()
