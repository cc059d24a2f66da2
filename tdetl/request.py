"""A run request: what one run was asked, as it was given. The CLI, the Python API and ``tdetl serve``
build one and start it through :func:`tdetl.api.start`, which alone chooses between this process
(:meth:`RunRequest.run_here`) and a cluster; a cluster's workers run the same request here with their
:class:`~tdetl.control.Share` (compiled parsers and transforms hold Polars objects that are built
where they run, not shipped)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .control import RunControl, Share
from .drivers import as_dsn, driver_class, open_ends
from .errors import ConfigError, DsnError
from .options import Options, make_options
from .pipeline import run as run_pipeline
from .progress import Summary
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
    limit: int | None = None  # --limit: stop after this many rows (a sample: tdetl bench)

    def options(self) -> Options:
        """What the drivers read, validated (parser, transforms, --on against the target)."""
        if self.limit is not None and (self.limit < 1 or self.cluster):
            raise ConfigError(f"--limit {self.limit}: a positive number of rows, for a run in this process (not"
                              " --cluster)")
        opts = make_options(self.parser, self.transforms, self.jobs, self.on_error, self.batch_rows, self.on)
        opts.target = as_dsn(self.target).without_password()
        self._refuse_unheard(opts)
        return opts

    def control(self, share: Share | None = None, summary: Summary | None = None) -> RunControl:
        """What only the pipeline reads."""
        return RunControl(progress=self.progress, status=self.status, state=self.state, share=share, summary=summary,
                          limit=self.limit)

    def validate(self) -> Options:
        """Everything that can be checked without connecting: the options, both DSNs against their
        drivers' specs, a parser only for a source that reads one (``tdetl serve`` checks a task so)."""
        opts = self.options()
        for dsn_text, role in ((self.source, "source"), (self.target, "target")):
            dsn = as_dsn(dsn_text)
            cls = driver_class(dsn.driver, role)
            if cls is None:
                raise DsnError(f"{dsn.masked()}: unknown {role} driver {dsn.driver!r}")
            cls.spec.parse(dsn, dsn.driver)
            if role == "source" and opts.parser is not None and not cls.capabilities.parser:
                raise ConfigError(f"{dsn.masked()}: the {dsn.driver} source does not use a parser")
        return opts

    def resumable(self) -> bool:
        """Whether a checkpoint file can resume this run: its target's flush is durable (a cluster
        takes only such targets)."""
        kind = driver_class(as_dsn(self.target).driver, "target")
        return self.cluster is not None or (kind is not None and kind.capabilities.durable_flush)

    def run_here(self, share: Share | None = None, summary: Summary | None = None) -> Summary:
        """The run in this process (or, with ``share``, one cluster task's part of it)."""
        opts = self.options()
        src, sink = open_ends(self.source, self.target, opts)
        return run_pipeline(src, sink, opts, self.control(share, summary))

    def resume_hint(self) -> str:
        """What running the same command again does after an interrupt, for the CLI to say."""
        src = driver_class(as_dsn(self.source).driver, "source")
        dst = driver_class(as_dsn(self.target).driver, "target")
        if src is None or dst is None:
            return ""
        if not dst.capabilities.durable_flush:
            return "nothing was kept (the target is written only at the end of a run)"
        if self.state:
            return f"run the same command again to resume from --state {self.state}"
        if dst.capabilities.local_files:
            return "run the same command again: the backup resumes from its journal"
        if src.capabilities.consumer:
            return "run the same command again: it continues after what was committed"
        return "a rerun starts over (rows written again are kept once); --state FILE makes a run resumable"

    def _refuse_unheard(self, opts: Options) -> None:
        """An --on choice for a situation only the target decides, given for a target that does not
        decide it (table-missing for a DuckDB file), would silently do nothing: refused."""
        dsn = as_dsn(self.target)
        kind = driver_class(dsn.driver, "target")
        if kind is None:
            return  # opening the target names the unknown driver
        heard = kind.capabilities.situations
        for key in [*opts.on.chosen, *opts.on.settings]:
            unheard = (key in TARGET_SITUATIONS and key not in heard) or \
                (key in TARGET_SETTINGS and "unreachable" not in heard)
            if unheard:
                raise ConfigError(f"--on {key}: the {dsn.driver} target does not decide {key} (only taos:// targets"
                                  " do), so the choice would do nothing")

    def for_worker(self) -> RunRequest:
        """What a cluster worker is handed: no progress line, status or state file of its own."""
        return replace(self, progress=False, status=None, state=None)
