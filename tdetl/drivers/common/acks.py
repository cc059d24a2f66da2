"""At-least-once bookkeeping for broker sources: what each consumer handed on, numbered, until the
pipeline reports those numbers durable in the sink; then the broker's acknowledgement tokens
(offsets, message ids, TMQ messages) are released in order."""

from __future__ import annotations

import threading
from typing import Any, Generic, TypeVar

from ...source import DONE

T = TypeVar("T")


def sequence_of(position: Any) -> int | None:
    """The sequence number a batch position carries (an int, or ``{"seq": n, ...}``)."""
    if isinstance(position, dict) and "seq" in position:
        position = position["seq"]
    return position if isinstance(position, int) else None


class Pending(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._by_partition: dict[str, list[tuple[int, T]]] = {}

    def add(self, partition: str, token: T) -> int:
        """Number the next hand-over of ``partition``; the number goes out as its position."""
        with self._lock:
            self._seq += 1
            self._by_partition.setdefault(partition, []).append((self._seq, token))
            return self._seq

    def durable(self, checkpoint: dict[str, Any]) -> dict[str, list[T]]:
        """The tokens the checkpoint covers (a partition's DONE covers all), removed from here."""
        out: dict[str, list[T]] = {}
        for partition, pos in checkpoint.items():
            limit = 1 << 62 if pos == DONE else sequence_of(pos)
            if limit is None:
                continue
            with self._lock:
                held = self._by_partition.get(partition, [])
                covered = [tok for n, tok in held if n <= limit]
                self._by_partition[partition] = [(n, tok) for n, tok in held if n > limit]
            if covered:
                out[partition] = covered
        return out

    def drop(self, partition: str) -> list[T]:
        """Everything still held for ``partition`` (at close: to be freed, not acknowledged)."""
        with self._lock:
            return [tok for _, tok in self._by_partition.pop(partition, [])]

    def any(self) -> bool:
        with self._lock:
            return any(self._by_partition.values())
