"""What file writers share: table names made safe as path components, and output written to temp
names that are renamed into place only on a successful close, so a failed run leaves no
half-written export behind."""

from __future__ import annotations

import glob as globlib
import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

from ...capabilities import SinkCapabilities
from ...errors import DsnError
from ...sink import Sink


def expand_files(path: Path, wanted: Callable[[Path], bool], what: str, where: str) -> list[Path]:
    """A source's files: a glob's matches, a directory's files that ``wanted`` accepts, or the file."""
    text = str(path)
    if any(ch in text for ch in "*?["):
        found = sorted(Path(p) for p in globlib.glob(text, recursive=True) if Path(p).is_file())
    elif path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and wanted(p))
    elif path.is_file():
        found = [path]
    else:
        raise DsnError(f"{where}: no such file or directory: {path}")
    if not found:
        raise DsnError(f"{where}: no {what} files match {path}")
    return found


def safe_name(name: str) -> str:
    """A path component for a table name: kept when harmless, else sanitised plus a short hash."""
    if re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name) and not name.startswith("."):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:80] + "-" + digest


class FileExport(Sink):
    capabilities = SinkCapabilities(durable_flush=False, local_files=True)  # files renamed into place at close

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._temps: dict[Path, Path] = {}

    def local_root(self) -> Path:
        return self.dsn.path

    def temp_for(self, final: Path) -> Path:
        tmp = self._temps.get(final)
        if tmp is None:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
            tmp.unlink(missing_ok=True)
            self._temps[final] = tmp
        return tmp

    def publish(self) -> None:
        for final, tmp in self._temps.items():
            os.replace(tmp, final)
        self._temps.clear()

    def abort(self) -> None:
        for tmp in self._temps.values():
            tmp.unlink(missing_ok=True)
        self._temps.clear()
