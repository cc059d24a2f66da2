"""One task's process: reads its definition from stdin (DSNs never on a command line, where ``ps``
shows them), runs it with its checkpoint and status files, prints one line on failure and exits
non-zero, as ``tdetl run`` does."""

from __future__ import annotations

import ctypes
import json
import signal
import sys
from typing import Any

from ..api import make_options
from ..drivers import as_dsn, open_sink, open_source
from ..errors import TdetlError
from ..pipeline import run as run_pipeline


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG: a task does not outlive a service killed with -9 (it is started again)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


def main() -> int:
    _die_with_parent()
    job = json.loads(sys.stdin.read())
    d = job["definition"]
    try:
        if job.get("cluster"):
            return _on_cluster(job)
        opts = make_options(d.get("parser"), d.get("transforms") or (), d.get("jobs"), d.get("on_error", "error"),
                            on=d.get("on") or None)
        opts.status = job["status"]
        opts.target = as_dsn(d["to"]).without_password()
        src = open_source(as_dsn(d["from"]), opts)
        sink = open_sink(as_dsn(d["to"]), opts)
        if sink.durable_flush:  # a restarted task resumes from its checkpoint
            opts.state = job["state"]
        summary = run_pipeline(src, sink, opts)
        print(f"tdetl: {src.dsn.masked()} -> {sink.dsn.masked()}: {summary.line()}", file=sys.stderr, flush=True)
        return 0 if summary.complete else 3  # rows wait in the write cache: restarted, the task replays them
    except TdetlError as e:
        print(f"tdetl: error: {e}", file=sys.stderr, flush=True)
        return 1
    except Exception as e:  # one line, as the CLI prints it
        print(f"tdetl: error: {type(e).__name__}: {' '.join(str(e).split())}", file=sys.stderr, flush=True)
        return 1


def _on_cluster(job: dict[str, Any]) -> int:
    """The task's partitions as Ray tasks; this process is their driver (checkpoint, counters)."""
    from ..cluster import Recipe, run_on_cluster

    d = job["definition"]
    recipe = Recipe(d["from"], d["to"], d.get("parser"), tuple(d.get("transforms") or ()), d.get("jobs"),
                    d.get("on_error", "error"), d.get("on") or None)
    # a cluster takes only targets whose flush is durable, so the task's checkpoint file always applies
    summary = run_on_cluster(recipe, job["cluster"], False, job["state"], job["status"])
    print(f"tdetl: {as_dsn(d['from']).masked()} -> {as_dsn(d['to']).masked()}: {summary.line()}", file=sys.stderr,
          flush=True)
    return 0 if summary.complete else 3


if __name__ == "__main__":
    sys.exit(main())
