"""Making writes durable: what the backup files and the write cache rely on before they say a
flush is done."""

from __future__ import annotations

import os
from pathlib import Path

# explicit modes for what tdetl creates, whatever the umask (the TDengine client library sets it to 0)
FILE_MODE, DIR_MODE = 0o644, 0o755


def sync_path(path: Path) -> None:
    """fsync a file or a directory (a rename is durable once its directory is synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """``mkdir -p`` with an explicit mode for every directory it makes."""
    if not path.is_dir():
        make_dirs(path.parent)
        try:
            path.mkdir(DIR_MODE)
        except FileExistsError:
            pass
