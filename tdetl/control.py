"""What only the pipeline reads of a run (drivers read :class:`tdetl.options.Options`): its progress
line and status file, the --state checkpoint file, the queue's bounds, and for a cluster task its
:class:`Share`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .sink import SharedTarget

if TYPE_CHECKING:
    from .progress import Summary


@dataclass(frozen=True)
class Share:
    """A cluster task's part of a run (tdetl/cluster): only these partitions (as the source cuts them
    for a cluster), from the driver's checkpoint, each checkpoint handed back after the flush that
    made it durable; the target written alongside the other shares."""

    partitions: frozenset[str]
    resume: dict[str, Any]
    on_durable: Callable[[dict[str, Any], Summary], None]
    target: SharedTarget


@dataclass
class RunControl:
    progress: bool | None = False  # None: a progress line when stderr is a terminal
    status: str | None = None  # a file rewritten with the run's counters every second (for tdetl serve)
    state: str | None = None  # --state <file>: the checkpoint kept after every flush (tdetl/state.py)
    batch_bytes: int = 256 << 20
    queue_size: int = 8
    share: Share | None = None
    summary: Summary | None = None  # count into this one (a caller reports it after an interrupt)
    limit: int | None = None  # read no more than this many rows (a sample); the partitions stay unfinished
