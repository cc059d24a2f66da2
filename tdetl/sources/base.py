"""The source contract: ``catalog()`` first, then batches per partition, resumable by position."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from ..dsn import Dsn
from ..model import Catalog, TableBatch

if TYPE_CHECKING:
    from ..pipeline import Options


class Source(ABC):
    protocols: ClassVar[tuple[str | None, ...]] = (None,)
    params: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, dsn: Dsn, options: Options) -> None:
        dsn.check_params(self.params)
        self.dsn = dsn
        self.options = options

    @abstractmethod
    def catalog(self) -> Catalog:
        """Databases, super tables and tables known before streaming (more tables may appear)."""

    def partitions(self) -> list[str]:
        """Independent parts that ``--jobs`` reads in parallel, in a stable order."""
        return [""]

    @abstractmethod
    def read(self, partition: str, start: Any = None) -> Iterator[TableBatch]:
        """Batches of one partition, from ``start`` (a position an earlier batch carried)."""

    def acknowledge(self, checkpoint: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Everything up to these positions is durable in the sink (brokers commit offsets or ack
        messages here: at-least-once)."""

    def wants_flush(self) -> bool:
        """True when the source cannot go on until what it handed over is acknowledged (an MQTT
        broker stops sending at its in-flight limit): the pipeline then flushes at once."""
        return False

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
