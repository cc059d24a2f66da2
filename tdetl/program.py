"""``tdetl`` as a process (the console script and ``python -m tdetl``): what only a whole process
may decide, around the CLI."""

from __future__ import annotations

import os
from typing import NoReturn

from .process_exit import leave


def main() -> NoReturn:
    """The CLI, with one BLAS thread: NumPy (loaded by pyarrow) otherwise starts a thread pool that
    spins on every core while tdetl, which does no linear algebra, moves data."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .cli import main as cli

    leave(cli())
