"""``tdetl.subscribe``: a TMQ subscription as a stream of ``(TableSpec, RecordBatch)`` pairs, for
callers who want the data rather than a pipeline. Offsets are committed when the caller says so
(:meth:`Subscription.commit`), or with ``auto_commit`` whenever the next message is fetched."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ...model import TableSpec
from .source import TmqSource

PARTITION = "consumer-0"


class Subscription:
    def __init__(self, source: TmqSource, auto_commit: bool = False) -> None:
        self.source = source
        self.auto_commit = auto_commit
        self._yielded: int | None = None  # the last position handed to the caller
        source.catalog()

    def __iter__(self) -> Iterator[tuple[TableSpec, pa.RecordBatch]]:
        for batch in self.source.read(PARTITION):
            if batch.position is not None:
                self._yielded = batch.position
            yield batch.spec, batch.data
            if self.auto_commit and self._yielded is not None:
                self.source.acknowledge({PARTITION: self._yielded})  # committed before the next poll

    def commit(self) -> None:
        """Commit everything yielded so far."""
        if self._yielded is None:
            return
        self.source.acknowledge({PARTITION: self._yielded})
        self.source.commit(PARTITION)

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
