"""What every TDengine transport offers the drivers: SQL, results as raw blocks decoded to Arrow,
and raw-block writes. Native, WebSocket and REST connections implement it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from .. import rawblock
from ..errors import TaosError
from ..model import Column


@dataclass
class Result:
    """A query's outcome. For a statement, ``is_update`` and ``affected_rows``; for a select,
    ``fields``, ``precision`` and its blocks (read once, in order)."""

    fields: list[Column] = field(default_factory=list)
    precision: str = "ms"
    is_update: bool = True
    affected_rows: int = 0
    _blocks: Iterator[bytes | memoryview] = field(default_factory=lambda: iter(()))
    _batches: Iterator[pa.RecordBatch] | None = None  # transports without raw blocks (REST)

    def blocks(self) -> Iterator[bytes | memoryview]:
        if self._batches is not None:
            raise TypeError("this result came over REST: it has Arrow batches, not raw blocks")
        return self._blocks

    def batches(self, min_rows: int = 0) -> Iterator[pa.RecordBatch]:
        """Decoded blocks; with ``min_rows``, consecutive blocks joined until they hold that many
        rows: every batch costs its consumers the same Python work whatever its size, and the
        server's blocks are small (4,096 rows for a narrow table)."""
        if self._batches is not None:
            yield from self._batches
            return
        held: list[pa.RecordBatch] = []
        rows = 0
        for block in self._blocks:
            batch = rawblock.decode(block, self.fields, self.precision)
            if rows + batch.num_rows < min_rows:
                held.append(batch)
                rows += batch.num_rows
                continue
            yield pa.concat_batches([*held, batch]) if held else batch
            held, rows = [], 0
        if held:
            yield pa.concat_batches(held) if len(held) > 1 else held[0]

    def schema(self, zone: str | None = None) -> pa.Schema:
        """The result's Arrow schema; with ``zone``, timestamps carry it (TDengine's are UTC instants)."""
        out = []
        for c in self.fields:
            t = c.type.arrow(self.precision)
            out.append(pa.field(c.name, pa.timestamp(t.unit, zone) if zone and pa.types.is_timestamp(t) else t))
        return pa.schema(out)

    def table(self) -> pa.Table:
        return pa.Table.from_batches(list(self.batches()), self.schema())


def refuse_blob(block: bytes | memoryview, fields: Sequence[Column] | None, where: str) -> None:
    """A raw block with a BLOB column kills the 3.3.7.5 client (SIGSEGV), and taosAdapter with it
    when sent over WebSocket: such a block is never sent. BLOB goes through SQL text instead."""
    types = [c.type for c in fields] if fields is not None else rawblock.block_types(block)
    if any(t.name == "BLOB" for t in types):
        raise TaosError(0xFFFF, "raw-block writes of BLOB columns crash TDengine 3.3's client library"
                        " (and taosAdapter); BLOB is written as SQL text", where)


class Connection(ABC):
    server_version: str = ""
    raw_writes = True  # False: writes must be INSERT text (REST)

    @abstractmethod
    def query(self, sql: str) -> Result:
        """Run one SQL statement."""

    def execute(self, sql: str) -> int:
        res = self.query(sql)
        for _ in res.batches() if res._batches is not None else res.blocks():  # drain: the server frees it
            pass
        return res.affected_rows

    @abstractmethod
    def write_block(self, table: str, block: bytes | memoryview, fields: Sequence[Column] | None) -> None:
        """Write one raw block into an existing table of the current database; with ``fields``,
        columns are matched by name."""

    def write_raw(self, raw_type: int, data: bytes | memoryview) -> None:
        """Write one TMQ raw message (meta or data) as it was polled (``tmq_write_raw``)."""
        raise TaosError(0xFFFF, "this transport cannot write TMQ raw messages; use taos:// or taos+ws://",
                        getattr(self, "where", ""))

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
