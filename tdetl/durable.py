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


def replace_text(path: Path, text: str, mode: int = FILE_MODE) -> None:
    """A small file replaced whole (a reader never sees it half written), with an explicit mode;
    not synced: status files and counters, rewritten often."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def open_append(path: Path, mode: int = FILE_MODE) -> int:
    """A file descriptor appending to ``path``, made with an explicit mode if it is new."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)


def make_dirs(path: Path) -> None:
    """``mkdir -p`` with an explicit mode for every directory it makes."""
    if not path.is_dir():
        make_dirs(path.parent)
        try:
            path.mkdir(DIR_MODE)
        except FileExistsError:
            pass
