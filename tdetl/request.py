"""A run request: what one run was asked, as it was given. The CLI, the Python API and ``tdetl serve``
build one and start it through :func:`tdetl.api.start`, which alone chooses between the local
pipeline and a cluster; a cluster's workers rebuild their options from the same request (compiled
parsers and transforms hold Polars objects that are built where they run, not shipped)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .drivers import as_dsn, driver_class
from .errors import ConfigError
from .options import Options, make_options
from .quality import TARGET_SETTINGS, TARGET_SITUATIONS


@dataclass(frozen=True)
class RunRequest:
    source: Any  # DSN text or Dsn, passwords included: they travel to a cluster's workers, never into a log
    target: Any
    parser: Any = None  # JSON text, @file or a ParserConfig
    transforms: tuple[str, ...] = ()
    jobs: int | None = None
    on_error: Any = "error"
    on: Any = None
    batch_rows: int | None = None
    state: str | None = None  # --state: the checkpoint file
    cluster: str | None = None  # --cluster: ray://…, a Ray address, or local
    progress: bool | None = False  # None: a progress line when stderr is a terminal
    status: str | None = None  # tdetl serve: the file the run's counters are rewritten to every second

    def options(self) -> Options:
        """The options drivers and the pipeline read, validated (parser, transforms, --on)."""
        opts = make_options(self.parser, self.transforms, self.jobs, self.on_error, self.progress, self.batch_rows,
                            self.on)
        opts.target = as_dsn(self.target).without_password()
        opts.status = self.status
        opts.state = self.state
        opts.cluster = self.cluster is not None  # the same partitions on the driver and every worker
        self._refuse_unheard(opts)
        return opts

    def _refuse_unheard(self, opts: Options) -> None:
        """An --on choice for a situation only the target decides, given for a target that does not
        decide it (table-missing for a DuckDB file), would silently do nothing: refused."""
        dsn = as_dsn(self.target)
        kind = driver_class(dsn.driver, "target")
        if kind is None:
            return  # opening the target names the unknown driver
        heard = kind.situations
        for key in [*opts.on.chosen, *opts.on.settings]:
            unheard = (key in TARGET_SITUATIONS and key not in heard) or \
                (key in TARGET_SETTINGS and "unreachable" not in heard)
            if unheard:
                raise ConfigError(f"--on {key}: the {dsn.driver} target does not decide {key} (only taos:// targets"
                                  " do), so the choice would do nothing")

    def for_worker(self) -> RunRequest:
        """What a cluster worker is handed: no progress line, status or state file of its own."""
        return replace(self, progress=False, status=None, state=None)
