"""WKB -> WKT for GEOMETRY values written as SQL text: TDengine 3.3 stores and returns WKB, and
takes it in raw blocks, but its SQL parser accepts only WKT (``'POINT(1 2)'``; a ``'\\x…'`` hex
literal is refused with "Invalid function para value"). Coordinates are printed with ``repr``, the
shortest text that parses back to the same double, so a value survives the round trip exactly."""

from __future__ import annotations

import math
import struct

from ..errors import DataError

_NAMES = {1: "POINT", 2: "LINESTRING", 3: "POLYGON", 4: "MULTIPOINT", 5: "MULTILINESTRING",
          6: "MULTIPOLYGON", 7: "GEOMETRYCOLLECTION"}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple[float | int, ...]:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise DataError(f"GEOMETRY value is not valid WKB (cut short at byte {self.pos})")
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return out


def _num(v: float) -> str:
    text = repr(float(v))
    return text[:-2] if text.endswith(".0") else text


def _geometry(r: _Reader) -> str:
    (order,) = r.take("B")
    if order not in (0, 1):
        raise DataError(f"GEOMETRY value is not valid WKB (byte order {order})")
    e = "<" if order == 1 else ">"
    (code,) = r.take(e + "I")
    flags, base = code & 0xE0000000, code & 0x1FFFFFFF  # EWKB flags; ISO puts Z/M in the 1000s
    if flags & 0x20000000:
        raise DataError("GEOMETRY value carries an SRID (EWKB), which TDengine does not take")
    if flags & 0x40000000 or base // 1000 in (2, 3):
        raise DataError("GEOMETRY value with M coordinates cannot be written as SQL text")
    dims = 3 if flags & 0x80000000 or base // 1000 == 1 else 2
    code = base % 1000
    name = _NAMES.get(code)
    if name is None:
        raise DataError(f"GEOMETRY value has unknown WKB type {code}")
    z = " Z" if dims == 3 else ""
    pt = e + "d" * dims

    def coords(n: int) -> str:
        return ", ".join(" ".join(_num(c) for c in r.take(pt)) for _ in range(n))

    def ring_list() -> str:
        (n,) = r.take(e + "I")
        return ", ".join(f"({coords(int(r.take(e + 'I')[0]))})" for _ in range(n))

    if code == 1:
        xy = r.take(pt)
        if all(math.isnan(c) for c in xy):
            return f"POINT{z} EMPTY"
        return f"POINT{z} ({' '.join(_num(c) for c in xy)})"
    if code == 2:
        (n,) = r.take(e + "I")
        return f"LINESTRING{z} ({coords(int(n))})" if n else f"LINESTRING{z} EMPTY"
    if code == 3:
        body = ring_list()
        return f"POLYGON{z} ({body})" if body else f"POLYGON{z} EMPTY"
    (n,) = r.take(e + "I")
    parts = [_geometry(r) for _ in range(int(n))]
    if not parts:
        return f"{name}{z} EMPTY"
    if code == 7:
        return f"{name}{z} ({', '.join(parts)})"
    inner = [p[p.index("("):] if "(" in p else "EMPTY" for p in parts]  # strip the member type names
    return f"{name}{z} ({', '.join(inner)})"


def wkb_to_wkt(data: bytes) -> str:
    r = _Reader(bytes(data))
    text = _geometry(r)
    if r.pos != len(r.data):
        raise DataError(f"GEOMETRY value is not valid WKB ({len(r.data) - r.pos} bytes left over)")
    return text
