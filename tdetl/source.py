"""The source contract: ``catalog()`` first, then batches per partition, resumable by position."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .capabilities import SourceCapabilities
from .dsn import Dsn
from .errors import ConfigError
from .model import Catalog, TableBatch
from .options import Options
from .params import Spec
from .progress import Lag, Progress, Summary
from .quality import Rejects
from .sink import Sink

TableStats = dict[tuple[str | None, str], dict[str, Any]]  # (database, table) -> rows, min_ts, max_ts


def count_into(stats: TableStats, key: tuple[str | None, str], rows: int, lo: int | None, hi: int | None) -> None:
    """Add ``rows`` rows between ``lo`` and ``hi`` (None: unknown) to a table's statistics."""
    s = stats.setdefault(key, {"rows": 0, "min_ts": None, "max_ts": None})
    s["rows"] += rows
    if lo is not None:
        s["min_ts"] = lo if s["min_ts"] is None else min(s["min_ts"], lo)
    if hi is not None:
        s["max_ts"] = hi if s["max_ts"] is None else max(s["max_ts"], hi)


@dataclass(frozen=True)
class Inventory:
    """What a source knows of its tables without reading their data (a backup's manifest)."""

    catalog: Catalog
    stats: TableStats
    runs: list[dict[str, Any]] | None = None  # a backup extended run by run (a subscription's)


SCHEMA_TRAVELS = {"field-not-in-stable": "add-column"}  # sync, replication, restore: the schema comes along
DONE: dict[str, Any] = {"done": True}  # the checkpointed position of a partition read to its end


class Source(ABC):
    protocols: ClassVar[tuple[str | None, ...]] = (None,)
    requires: ClassVar[dict[str, str]] = {}  # modules it imports when it runs -> the extra installing each
    spec: ClassVar[Spec] = Spec()  # its DSN parameters, declared once (tdetl/params.py)
    capabilities: ClassVar[SourceCapabilities] = SourceCapabilities()  # each driver declares its own
    # situations whose default differs for this source: a TDengine source carries schema changes along
    quality_defaults: ClassVar[dict[str, str]] = {}

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        self.config = self.spec.parse(dsn, dsn.driver)
        self.dsn = dsn
        self.options = options
        # what the run's records met (tdetl.quality), for the summary: one ledger handed to both ends
        self.rejects = rejects if rejects is not None else Rejects(options.on_error, options.on, self.quality_defaults)
        if options.parser is not None and not self.capabilities.parser:
            raise ConfigError(f"{dsn.masked()}: the {dsn.driver} source does not use --parser: its tables come"
                              " from the source itself")

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

    def direct_to(self, sink: Sink) -> Callable[[Summary, Progress, list[str]], None] | None:
        """A source that can hand ``sink`` its data in the sink's own form (TMQ raw into a
        :class:`~tdetl.sink.RawTarget`) returns the loop that does so for the given partitions,
        counting into the summary; the pipeline then runs only that."""
        return None

    def spread_partitions(self) -> list[str]:
        """The partitions when they are spread over many machines (a cluster run, on its driver and
        every worker alike): finer where the source can cut them (time spans)."""
        return self.partitions()

    def endless(self, partition: str) -> bool:
        """Whether reading ``partition`` may never end (a consumer, a realtime poll): a cluster runs
        each such partition as a task of its own."""
        return self.capabilities.consumer

    def local_files(self) -> list[Path]:
        """Files this source reads from the machine it runs on (``capabilities.local_files``): a
        cluster run checks that every node sees them (a shared filesystem) before it starts."""
        return []

    def inventory(self) -> Inventory | None:
        """Tables, row counts and time ranges known without reading data (for ``tdetl inspect``);
        None: ``inspect`` reads the data once."""
        return None

    def lag(self) -> Lag | None:
        """How far behind the newest data the source is, or None where it cannot tell; read once a
        second for tdetl serve's metrics, from another thread than the readers."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


POSITION_EVERY = 1_048_576  # a source that can gives a position at least every this many rows of a partition;
# a sink holding the batches after a partition's last position (a backup) holds this many before it must
# write them early (and a crash then repeats them)


def ending_at(batches: Iterable[TableBatch], partition: str, position: Any,
              on_data: Callable[[], None] | None = None) -> Iterator[TableBatch]:
    """The batches of one window, one behind, so that only the last carries ``position`` (the
    window's end): a resume continues after the window once all of it is durable, never halfway.
    ``on_data`` is called when the window held anything."""
    held: TableBatch | None = None
    for b in batches:
        if held is not None:
            yield held
        held = b
    if held is not None:
        if on_data is not None:
            on_data()
        yield TableBatch(held.spec, held.data, partition, position)
