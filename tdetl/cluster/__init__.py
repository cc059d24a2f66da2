"""A run's partitions as Ray tasks (``--cluster``): the driver process prepares the target, keeps
the checkpoint and the progress line; workers open source and sink from the DSNs and run the
ordinary pipeline on their share. Ray is imported only when a run asks for a cluster."""

from __future__ import annotations

from .run import run_on_cluster

__all__ = ["run_on_cluster"]
