"""The sink contract: ``prepare(catalog)``, ``write`` (may buffer), ``flush`` (durable after it
returns, together with the source checkpoint it is given), ``close`` (commit) or ``abort``. A sink
declares what it can do in ``capabilities``; one that takes raw TMQ messages also implements
:class:`RawTarget`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .capabilities import SinkCapabilities
from .dsn import Dsn
from .model import Catalog, TableBatch
from .options import Options
from .params import Spec
from .quality import Rejects

if TYPE_CHECKING:
    from .taos.conn import Connection


@dataclass(frozen=True)
class SharedTarget:
    """This sink is one of several writing the same target at once (a cluster run's shares):
    ``name`` is unique in the run (a backup writes its part journal under it); ``existed`` holds the
    super tables the target had before the run, when known (the others are being made alongside)."""

    name: str
    existed: frozenset[str] | None = None


class Sink(ABC):
    protocols: ClassVar[tuple[str | None, ...]] = (None,)
    requires: ClassVar[dict[str, str]] = {}  # modules it imports when it runs -> the extra installing each
    spec: ClassVar[Spec] = Spec()  # its DSN parameters, declared once (tdetl/params.py)
    capabilities: ClassVar[SinkCapabilities] = SinkCapabilities()  # each driver declares its own

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        self.config = self.spec.parse(dsn, dsn.driver)
        self.dsn = dsn
        self.options = options
        # one ledger per run, handed to both ends (tdetl.drivers.open_ends): the sink's situations count
        # with the source's
        self.rejects = rejects if rejects is not None else Rejects(options.on_error, options.on)
        self.shared: SharedTarget | None = None  # set before resume_state when others write alongside

    def resume_state(self, source_dsn: Dsn, appends: bool = False) -> dict[str, Any] | None:
        """The checkpoint an interrupted earlier run left (partition -> position), if any. With
        ``appends`` the source's runs continue each other (a subscription): a sink that keeps what
        earlier runs wrote (a backup) extends it rather than refusing it."""
        return None

    @abstractmethod
    def prepare(self, catalog: Catalog) -> None:
        """Called once before data, with what the source knows up front."""

    @abstractmethod
    def write(self, batch: TableBatch) -> None:
        """Take one batch; may buffer."""

    def wants_flush(self) -> bool:
        """True when enough is buffered that the pipeline should flush (and checkpoint) now."""
        return False

    def flush(self, checkpoint: dict[str, Any] | None = None) -> None:  # noqa: B027 - optional
        """Make everything written so far durable, recording ``checkpoint`` with it if resumable."""

    @abstractmethod
    def close(self) -> None:
        """Finish: commit what was written. Only called after a run without errors."""

    def pending(self) -> tuple[int, int]:
        """After ``close``: rows acknowledged to the source that are not in the target yet (a write
        cache waiting for the target), in all and of this run's. A run with any is not complete."""
        return 0, 0

    def local_root(self) -> Path | None:
        """The file or directory this sink writes on the machine it runs on
        (``capabilities.local_files``): a cluster run checks that every node writes the same one (a
        shared filesystem); ``tdetl serve`` that it lies where tasks may write."""
        return None

    def tables_before_run(self) -> frozenset[str] | None:
        """After ``prepare``: the super tables the target held before this run (a cluster's
        workers keep their declared widths and widen the ones the run's other workers make)."""
        return None

    def share_checkpoint(self, share: str) -> dict[str, Any] | None:
        """What a cluster share's attempt (``SharedTarget.name``) made durable, for a sink that records
        it with the data (a backup's part journal); None: the driver's record stands."""
        return None

    def abort(self) -> None:  # noqa: B027 - optional hook
        """Discard what is not committed (temp files, open transactions)."""


class RawTarget(Protocol):
    """A sink with ``capabilities.raw``: a source that can (TMQ with meta) writes the server's own
    messages through connections it opens here, after ``prepare``."""

    def takes_raw(self, precision: str) -> bool:
        """Whether messages of a database of ``precision`` can go in unchanged (no renames)."""

    def raw_connection(self) -> Connection:
        """A new connection to the target, its database in use (one per writing thread)."""

    def raw_writers(self) -> int:
        """How many threads write at once."""

    def raw_database(self) -> str:
        """The target database (after ``prepare``)."""
