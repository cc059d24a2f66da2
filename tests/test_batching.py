"""The shared micro-batcher: cut by size, by the first item's age, end when idle."""

from __future__ import annotations

import threading
import time

from tdetl.drivers.common.batching import Inbox


def test_full_batches_then_the_rest_when_idle() -> None:
    inbox = Inbox(size=4, timeout=60, idle=0.2)
    inbox.items.extend(range(10))
    assert list(inbox.batches(threading.Event())) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_a_partial_batch_leaves_after_the_timeout() -> None:
    inbox = Inbox(size=1000, timeout=0.1, idle=None)
    stop = threading.Event()
    out = []

    def feed() -> None:
        inbox.items.append("a")
        time.sleep(0.4)
        inbox.items.append("b")

    t = threading.Thread(target=feed)
    t.start()
    for batch in inbox.batches(stop):
        out.append(batch)
        if len(out) == 2:
            stop.set()
    t.join()
    assert out == [["a"], ["b"]]  # "a" did not wait for "b"


def test_idle_clock_stands_still_while_the_sender_is_away() -> None:
    inbox = Inbox(size=10, timeout=0.05, idle=0.1)
    away_until = time.monotonic() + 0.4
    started = time.monotonic()
    assert list(inbox.batches(threading.Event(), present=lambda: time.monotonic() >= away_until)) == []
    assert time.monotonic() - started >= 0.45


def test_on_quiet_cuts_a_batch_before_its_timeout() -> None:
    inbox = Inbox(size=10, timeout=60, idle=None)
    inbox.items.extend([1, 2])
    stop = threading.Event()
    quiet_seen = []

    def on_quiet(batch: list[int], quiet: float) -> bool:
        quiet_seen.append(quiet)
        return quiet >= 0.05

    for batch in inbox.batches(stop, on_quiet=on_quiet):
        assert batch == [1, 2]
        stop.set()
    assert max(quiet_seen) >= 0.05
