"""``python -m tdetl``: the CLI as a program."""

import atexit
import logging
import os
import sys

from .cli import main


def _libtaos_loaded() -> bool:
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as fh:
            return "libtaos" in fh.read()
    except OSError:
        return False


def _exit(code: int) -> None:
    """Exit without the TDengine client library's exit handler when it is loaded: its cleanup waits
    about 1.5 s for the library's timer threads, on every run. By now every connection is closed and
    every write was acknowledged by the server, so nothing is lost; Python's own exit handlers and
    output still run and flush."""
    if not _libtaos_loaded():
        sys.exit(code)
    logging.shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


_exit(main())
