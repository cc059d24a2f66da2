"""What the drivers of a run read besides their DSNs (the pipeline reads it too; what only the
pipeline reads is :class:`tdetl.control.RunControl`). Below the pipeline, so drivers import it
without a cycle."""

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
    on_error: ErrorPolicy = field(default_factory=ErrorPolicy)
    on: Strategies = field(default_factory=Strategies)  # --on <situation>=<choice>


OnArg = Sequence[str] | Mapping[str, Any] | Strategies | None


def make_options(parser: str | ParserConfig | None = None, transforms: Sequence[str] = (),
                 jobs: int | None = None, on_error: str | ErrorPolicy = "error", batch_rows: int | None = None,
                 on: OnArg = None) -> Options:
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
    )
    given = on if isinstance(on, Strategies) else Strategies.parse(on)
    opts.on = parser.on.merged(given) if parser is not None else given  # the command line wins
    if batch_rows:
        opts.batch_rows = batch_rows
    return opts
