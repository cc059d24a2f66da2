"""Values derived from objects that are passed again and again as the same object (a table's
columns tuple): found by identity, which costs less per batch than hashing the object."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

V = TypeVar("V")


class ByIdentity(Generic[V]):
    """Keeps each key object alive beside its value, so its id cannot be reused for another."""

    def __init__(self, limit: int = 1 << 14) -> None:
        self._items: dict[tuple[int, Any], tuple[object, V]] = {}
        self._limit = limit

    def get(self, obj: object, extra: Any = None) -> V | None:
        hit = self._items.get((id(obj), extra))
        return hit[1] if hit is not None and hit[0] is obj else None

    def put(self, obj: object, value: V, extra: Any = None) -> V:
        if len(self._items) >= self._limit:
            self._items.clear()
        self._items[(id(obj), extra)] = (obj, value)
        return value
