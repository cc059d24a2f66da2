"""The sink contract: ``prepare(catalog)``, ``write`` (may buffer), ``flush`` (durable after it
returns, together with the source checkpoint it is given), ``close`` (commit) or ``abort``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from .dsn import Dsn
from .model import Catalog, TableBatch
from .options import Options
from .params import Spec
from .quality import Rejects


class Sink(ABC):
    protocols: ClassVar[tuple[str | None, ...]] = (None,)
    requires: ClassVar[dict[str, str]] = {}  # modules it imports when it runs -> the extra installing each
    spec: ClassVar[Spec] = Spec()  # its DSN parameters, declared once (tdetl/params.py)
    durable_flush: ClassVar[bool] = True  # False: data is durable only at close (one transaction, temp files)
    situations: ClassVar[frozenset[str]] = frozenset()  # the target-side --on situations it decides (quality)

    def __init__(self, dsn: Dsn, options: Options) -> None:
        self.config = self.spec.parse(dsn, dsn.driver)
        self.dsn = dsn
        self.options = options
        self.rejects = Rejects(options.on_error, options.on)  # the pipeline shares its source's ledger

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
        """The directory this sink writes on the machine it runs on: a cluster run checks that
        every node writes the same one (a shared filesystem) before it starts."""
        return None

    def tables_before_run(self) -> frozenset[str] | None:
        """After ``prepare``: the super tables the target held before this run (a cluster's
        workers keep their declared widths and widen the ones the run's other workers make)."""
        return None

    def share_checkpoint(self, share: str) -> dict[str, Any] | None:
        """What a cluster share's attempt (``Options.share``) made durable, for a sink that records
        it with the data (a backup's part journal); None: the driver's record stands."""
        return None

    def abort(self) -> None:  # noqa: B027 - optional hook
        """Discard what is not committed (temp files, open transactions)."""
