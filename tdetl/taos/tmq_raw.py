"""The TMQ raw data format (``tmq_get_raw`` types 2 and 4: shared/spec/rawblock.md §5): per block,
a raw block (version 2, LE lengths) with the table name and the column schema it was written
with. Parsed per block, never per row; the blocks are decoded by :mod:`tdetl.rawblock`."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DataError
from ..model import Column
from ..types import type_from_schema
from .fields import PRECISIONS

DATA_TYPES = (2, 4)  # RES_TYPE__TMQ, RES_TYPE__TMQ_METADATA
_VERSION = 100  # MQ_DATA_RSP_VERSION


@dataclass
class RawTable:
    """One block of a data message."""

    table: str
    columns: tuple[Column, ...]
    precision: str
    rows: int
    block: memoryview


class _Reader:
    def __init__(self, mv: memoryview, where: str) -> None:
        self.mv, self.pos, self.where = mv, 0, where

    def need(self, n: int) -> None:
        if self.pos + n > len(self.mv):
            raise DataError(f"{self.where}: TMQ raw data ends early (byte {self.pos}, {n} more wanted)")

    def fixed(self, n: int, signed: bool = True, order: str = "little") -> int:
        self.need(n)
        v = int.from_bytes(self.mv[self.pos:self.pos + n], order, signed=signed)  # type: ignore[arg-type]
        self.pos += n
        return v

    def uvar(self) -> int:
        shift = value = 0
        while True:
            self.need(1)
            b = self.mv[self.pos]
            self.pos += 1
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise DataError(f"{self.where}: bad varint in TMQ raw data at byte {self.pos}")

    def svar(self) -> int:
        u = self.uvar()
        return (u >> 1) ^ -(u & 1)

    def binary(self) -> memoryview:
        n = self.uvar()
        self.need(n)
        out = self.mv[self.pos:self.pos + n]
        self.pos += n
        return out

    def cstr(self) -> str:
        return bytes(self.binary()).rstrip(b"\0").decode(errors="replace")


def parse(raw: bytes | memoryview, where: str = "tmq") -> list[RawTable]:
    """The blocks of one data message (raw type 2 or 4; a type 4's create-table requests after the
    blocks are not needed for decoding: tags are looked up by the source)."""
    r = _Reader(memoryview(raw).cast("B"), where)
    if r.mv[:1] == bytes([_VERSION]):
        r.pos = 1
    skip = r.fixed(4)  # the request and response offsets
    r.pos += skip
    blocks = r.fixed(4)
    if blocks <= 0:
        return []
    with_name, with_schema = r.fixed(1), r.fixed(1)
    if not with_name or not with_schema:
        raise DataError(f"{where}: TMQ data without table names or schemas (msg.with.table.name is off)")
    out = []
    for _ in range(blocks):
        rsp = _Reader(r.binary(), where)
        rsp.fixed(8)  # version
        rows = rsp.fixed(8, order="big")
        compressed = rsp.fixed(1)
        precision = PRECISIONS.get(rsp.fixed(1), "ms")
        if compressed:
            raise DataError(f"{where}: compressed TMQ blocks are not supported")
        block = rsp.mv[rsp.pos:]
        ncols = r.svar()
        r.svar()  # schema version
        cols = []
        for _ in range(ncols):
            tid, _flags, nbytes = r.fixed(1), r.fixed(1), r.svar()
            r.svar()  # column id
            cols.append(Column(r.cstr(), type_from_schema(tid, nbytes)))
        out.append(RawTable(r.cstr(), tuple(cols), precision, rows, block))
    return out


def row_count(raw: bytes | memoryview) -> int:
    """Rows in a data message, without decoding its blocks (for counting raw replication)."""
    return sum(t.rows for t in parse(raw))
