"""One task's process: reads its definition from stdin (DSNs never on a command line, where ``ps``
shows them), runs it with its checkpoint and status files, prints one line on failure and exits
non-zero, as ``tdetl run`` does."""

from __future__ import annotations

import ctypes
import json
import logging
import signal
import sys
from dataclasses import replace

from ..api import start
from ..drivers import as_dsn
from ..errors import EXIT_PERMANENT, TdetlError, temporary
from ..process_exit import leave
from ..request import RunRequest


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG: a task does not outlive a service killed with -9 (it is started again)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


def main() -> int:
    _die_with_parent()
    # the task's log: what tdetl run -v prints (the run's start, progress every 10 s, warnings), timed
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S%z", stream=sys.stderr)
    job = json.loads(sys.stdin.read())
    d = job["definition"]
    try:
        request = RunRequest(d["from"], d["to"], d.get("parser"), tuple(d.get("transforms") or ()), d.get("jobs"),
                             d.get("on_error", "error"), d.get("on") or None, None, None, job.get("cluster"),
                             False, job["status"])
        if request.resumable():  # a restarted task resumes from its checkpoint
            request = replace(request, state=job["state"])
        summary = start(request)
        print(f"tdetl: {as_dsn(d['from']).masked()} -> {as_dsn(d['to']).masked()}: {summary.line()}",
              file=sys.stderr, flush=True)
        return 0 if summary.complete else 3  # rows wait in the write cache: restarted, the task replays them
    except TdetlError as e:
        print(f"tdetl: error: {e}", file=sys.stderr, flush=True)
        return 1 if temporary(e) else EXIT_PERMANENT  # permanent: the supervisor does not restart it
    except Exception as e:  # one line, as the CLI prints it
        print(f"tdetl: error: {type(e).__name__}: {' '.join(str(e).split())}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    leave(main())
