"""Every place in a JSON document, for property tests that change a good document anywhere."""

from __future__ import annotations

from typing import Any


def json_paths(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The key/index path of every value under ``node`` (``node`` itself excluded)."""
    out = [at] if at else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += json_paths(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += json_paths(v, (*at, i))
    return out
