"""What a run was asked, as it was given: each worker rebuilds its options from it (compiled
parsers and transforms hold Polars objects that are built where they run, not shipped)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..options import Options, make_options


@dataclass(frozen=True)
class Recipe:
    source: Any  # DSN text or Dsn, passwords included: they travel to the workers, never into a log
    target: Any
    parser: Any = None  # JSON text, @file or a ParserConfig
    transforms: tuple[str, ...] = ()
    jobs: int | None = None
    on_error: Any = "error"
    on: Any = None
    batch_rows: int | None = None

    def options(self, progress: bool | None = False) -> Options:
        opts = make_options(self.parser, self.transforms, self.jobs, self.on_error, progress, self.batch_rows,
                            self.on)
        opts.cluster = True  # the same partitions on the driver and every worker
        return opts
