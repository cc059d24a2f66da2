"""GEOMETRY values as WKT for SQL text: every WKB geometry kind, both byte orders, Z, and bad input."""

from __future__ import annotations

import struct

import pytest

from tdetl.errors import DataError
from tdetl.taos.wkt import wkb_to_wkt


def _pt(x: float, y: float) -> bytes:
    return struct.pack("<BIdd", 1, 1, x, y)


def _ring(*pts: tuple[float, float]) -> bytes:
    return struct.pack("<I", len(pts)) + b"".join(struct.pack("<dd", *p) for p in pts)


SQUARE = ((0, 0), (4, 0), (4, 4), (0, 0))


@pytest.mark.parametrize("wkb,wkt", [
    (_pt(1, 2), "POINT (1 2)"),
    (_pt(0.1, -1e-300), "POINT (0.1 -1e-300)"),
    (struct.pack(">BIdd", 0, 1, 1.5, 2.25), "POINT (1.5 2.25)"),  # big-endian WKB
    (struct.pack("<BIdd", 1, 1, float("nan"), float("nan")), "POINT EMPTY"),
    (struct.pack("<BI", 1, 2) + _ring((0, 0), (1, 1)), "LINESTRING (0 0, 1 1)"),
    (struct.pack("<BI", 1, 2) + _ring(), "LINESTRING EMPTY"),
    (struct.pack("<BII", 1, 3, 1) + _ring(*SQUARE), "POLYGON ((0 0, 4 0, 4 4, 0 0))"),
    (struct.pack("<BII", 1, 4, 2) + _pt(1, 2) + _pt(3, 4), "MULTIPOINT ((1 2), (3 4))"),
    (struct.pack("<BII", 1, 5, 1) + struct.pack("<BI", 1, 2) + _ring((0, 0), (1, 1)), "MULTILINESTRING ((0 0, 1 1))"),
    (struct.pack("<BII", 1, 6, 1) + struct.pack("<BII", 1, 3, 1) + _ring(*SQUARE),
     "MULTIPOLYGON (((0 0, 4 0, 4 4, 0 0)))"),
    (struct.pack("<BII", 1, 7, 2) + _pt(1, 2) + struct.pack("<BI", 1, 2) + _ring((0, 0), (1, 1)),
     "GEOMETRYCOLLECTION (POINT (1 2), LINESTRING (0 0, 1 1))"),
    (struct.pack("<BIddd", 1, 1001, 1, 2, 3), "POINT Z (1 2 3)"),  # ISO Z
    (struct.pack("<BIddd", 1, 0x80000001, 1, 2, 3), "POINT Z (1 2 3)"),  # EWKB Z
])
def test_wkb_becomes_wkt(wkb: bytes, wkt: str) -> None:
    assert wkb_to_wkt(wkb) == wkt


@pytest.mark.parametrize("wkb,match", [
    (b"", "cut short"), (_pt(1, 2)[:-1], "cut short"), (_pt(1, 2) + b"\x00", "1 bytes left over"),
    (b"\x07" + _pt(1, 2)[1:], "byte order 7"), (struct.pack("<BI", 1, 99), "unknown WKB type 99"),
    (struct.pack("<BIddd", 1, 2001, 1, 2, 3), "M coordinates"),
    (struct.pack("<BIIdd", 1, 0x20000001, 4326, 1, 2), "SRID"),
])
def test_bad_wkb_is_refused(wkb: bytes, match: str) -> None:
    with pytest.raises(DataError, match=match):
        wkb_to_wkt(wkb)
