"""Result and write field lists as the TDengine APIs carry them."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from ..model import Column
from ..types import type_from_id

PRECISIONS = {0: "ms", 1: "us", 2: "ns"}
TAOS_FIELD = struct.Struct("<65sbxxi")  # char name[65]; int8 type; (2 pad); int32 bytes = 72 bytes


def pack_fields(columns: Sequence[Column]) -> bytes:
    """TAOS_FIELD array for ``*_with_fields`` writes (only the names are matched by the server,
    the rest is filled as ``taos_fetch_fields`` would)."""
    out = bytearray()
    for c in columns:
        name = c.name.encode()
        if len(name) > 64:
            raise ValueError(f"column name {c.name!r} is longer than TDengine's 64 bytes")
        out += TAOS_FIELD.pack(name, c.type.type_id, c.type.field_bytes())
    return bytes(out)


def columns_from_lists(names: Sequence[str], types: Sequence[int], lengths: Sequence[int],
                       precisions: Sequence[int] | None = None,
                       scales: Sequence[int] | None = None) -> list[Column]:
    """Columns from a result's parallel field lists (taosAdapter query response, fetch_fields)."""
    precisions = precisions or [0] * len(names)
    scales = scales or [0] * len(names)
    return [Column(n, type_from_id(t, ln, p, s))
            for n, t, ln, p, s in zip(names, types, lengths, precisions, scales)]
