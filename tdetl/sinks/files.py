"""What file exports share: output goes to temp names and is renamed into place only on a
successful close, so a failed run leaves no half-written export behind."""

from __future__ import annotations

import os
from pathlib import Path

from .base import Sink


class FileExport(Sink):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._temps: dict[Path, Path] = {}

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
