"""What a run is asked to do besides its two DSNs; sources and sinks receive it. Below the pipeline,
so drivers import it without a cycle."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ErrorPolicy
from .model import TableBatch
from .quality import Strategies

if TYPE_CHECKING:
    from .transform.parser import ParserConfig

Transform = Callable[[TableBatch], Iterable[TableBatch]]


@dataclass
class Options:
    parser: Any = None  # tdetl.transform.parser.ParserConfig
    transforms: list[Transform] = field(default_factory=list)
    jobs: int | None = None  # readers; None: the source's default_jobs
    target: str = ""  # the target DSN without its password (a TMQ group defaults to a hash of both)
    batch_rows: int = 1 << 20
    batch_bytes: int = 256 << 20
    queue_size: int = 8
    on_error: ErrorPolicy = field(default_factory=ErrorPolicy)
    on: Strategies = field(default_factory=Strategies)  # --on <situation>=<choice>
    progress: bool | None = None  # None: on when stderr is a terminal
    state: str | None = None  # --state <file>: the checkpoint kept after every flush (tdetl/state.py)
    status: str | None = None  # a file rewritten with the run's counters every second (for tdetl serve)
    # a cluster task (tdetl/cluster): only these partitions, from the driver's checkpoint, each
    # checkpoint handed back after the flush that made it durable
    partitions: list[str] | None = None
    resume: dict[str, Any] | None = None
    on_durable: Callable[[dict[str, Any], Any], None] | None = None  # (checkpoint, Summary)
    cluster: bool = False  # a cluster run (driver and workers alike): sources may cut finer partitions
    existed: frozenset[str] | None = None  # a cluster worker: super tables the target held before the run (if known)
    share: str | None = None  # the attempt's name, unique in the run: a backup writes a part journal under it


OnArg = Sequence[str] | Mapping[str, Any] | Strategies | None


def make_options(parser: str | ParserConfig | None = None, transforms: Sequence[str] = (),
                 jobs: int | None = None, on_error: str | ErrorPolicy = "error", progress: bool | None = False,
                 batch_rows: int | None = None, on: OnArg = None) -> Options:
    # Polars and the parser load only when a parser or transform is given (startup cost)
    if isinstance(parser, str):
        from .transform.parser import load_parser
        parser = load_parser(parser)
    compiled = []
    if transforms:
        from .transform.rename import compile_transform
        compiled = [compile_transform(t) for t in transforms]
    opts = Options(
        parser=parser,
        transforms=compiled,
        jobs=max(1, jobs) if jobs else None,
        on_error=on_error if isinstance(on_error, ErrorPolicy) else ErrorPolicy.parse(on_error),
        progress=progress,
    )
    given = on if isinstance(on, Strategies) else Strategies.parse(on)
    opts.on = parser.on.merged(given) if parser is not None else given  # the command line wins
    if batch_rows:
        opts.batch_rows = batch_rows
    return opts
