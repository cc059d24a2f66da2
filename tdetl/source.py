"""The source contract: ``catalog()`` first, then batches per partition, resumable by position."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from .dsn import Dsn
from .errors import ConfigError
from .model import Catalog, TableBatch
from .options import Options
from .params import Spec
from .progress import Lag, Progress, Summary
from .quality import Rejects
from .sink import Sink

SCHEMA_TRAVELS = {"field-not-in-stable": "add-column"}  # sync, replication, restore: the schema comes along
DONE: dict[str, Any] = {"done": True}  # the checkpointed position of a partition read to its end


class Source(ABC):
    protocols: ClassVar[tuple[str | None, ...]] = (None,)
    requires: ClassVar[dict[str, str]] = {}  # modules it imports when it runs -> the extra installing each
    spec: ClassVar[Spec] = Spec()  # its DSN parameters, declared once (tdetl/params.py)
    uses_parser: ClassVar[bool] = False  # reads --parser; the others refuse it
    default_jobs: ClassVar[int] = 1  # readers when --jobs is not given
    consumes: ClassVar[bool] = False  # partitions are members of a consumer group: all read at once, never ending
    appends: ClassVar[bool] = False  # each run continues the last (a subscription): backups are extended
    # situations whose default differs for this source: a TDengine source carries schema changes along
    quality_defaults: ClassVar[dict[str, str]] = {}

    def __init__(self, dsn: Dsn, options: Options) -> None:
        self.config = self.spec.parse(dsn, dsn.driver)
        self.dsn = dsn
        self.options = options
        # what this source's records met (tdetl.quality), for the summary; the sink shares it
        self.rejects = Rejects(options.on_error, options.on, self.quality_defaults)
        if options.parser is not None and not self.uses_parser:
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

    def direct_to(self, sink: Sink) -> Callable[[Summary, Progress], None] | None:
        """A source that can hand ``sink`` its data in the sink's own form (TMQ raw into TDengine)
        returns the loop that does so, counting into the summary; the pipeline then runs only that."""
        return None

    def run_partitions(self) -> list[str]:
        """The partitions this run reads: all, or those a cluster task was given."""
        parts = self.partitions()
        if self.options.partitions is None:
            return parts
        only = set(self.options.partitions)  # a share of tens of thousands of tables
        return [p for p in parts if p in only]

    def endless(self, partition: str) -> bool:
        """Whether reading ``partition`` may never end (a consumer, a realtime poll): a cluster runs
        each such partition as a task of its own."""
        return self.consumes

    def local_files(self) -> list[Path]:
        """Files this source reads from the machine it runs on: a cluster run checks that every
        node sees them (a shared filesystem) before it starts."""
        return []

    def lag(self) -> Lag | None:
        """How far behind the newest data the source is, or None where it cannot tell; read once a
        second for tdetl serve's metrics, from another thread than the readers."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


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
