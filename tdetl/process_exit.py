"""Leaving a process that loaded the TDengine client library, without paying for its exit handler."""

from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import NoReturn


def _libtaos_loaded() -> bool:
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as fh:
            return "libtaos" in fh.read()
    except OSError:
        return False


def leave(code: int) -> NoReturn:
    """Exit without the TDengine client library's exit handler when it is loaded: its cleanup joins
    the library's heartbeat thread, which sleeps in 1.5 s steps, on every run. By now every
    connection is closed and every write was acknowledged by the server (or the run failed), so
    nothing is lost; Python's own exit handlers and output still run and flush."""
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
