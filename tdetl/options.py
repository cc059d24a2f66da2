"""What a run is asked to do besides its two DSNs; sources and sinks receive it. Below the pipeline,
so drivers import it without a cycle."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import ErrorPolicy
from .model import TableBatch
from .quality import Strategies

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
