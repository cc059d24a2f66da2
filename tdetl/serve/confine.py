"""Where a service task may touch files: only under the directories the operator named
(``--files DIR``, default ``files/`` in the data directory). Checked when a task is stored: file
DSNs (drivers with local files), ``@file`` parameters and parsers, archives and the write cache. A
relative path resolves against the first directory, where the task's process runs; ``..`` and
symbolic links are followed before the check."""

from __future__ import annotations

import os
from pathlib import Path

from ..drivers import as_dsn, driver_class
from ..errors import ConfigError, shown
from ..options import Options


class Confinement:
    def __init__(self, roots: list[Path]) -> None:
        self.roots = [Path(os.path.realpath(r.expanduser())) for r in roots]

    @property
    def home(self) -> Path:
        """Where a task's process runs: relative paths land here."""
        return self.roots[0]

    def check(self, source: str, target: str, parser: str | None) -> None:
        """Before anything is read: the DSNs' paths and ``@file`` values and a parser's ``@file``;
        ConfigError naming the first path outside the allowed directories."""
        for text, role, key in ((source, "source", "from"), (target, "target", "to")):
            dsn = as_dsn(text)
            cls = driver_class(dsn.driver, role)
            if cls is not None and cls.capabilities.local_files:
                self._inside(_before_glob(dsn.raw_path or dsn.object), f"{key!r}")
            for name, value in dsn.params:
                if value and value.startswith("@"):
                    self._inside(value[1:], f"{key!r} parameter {name}")
        self.check_parser(parser)

    def check_parser(self, parser: object) -> None:
        """A parser given as ``@file``."""
        if isinstance(parser, str) and parser.lstrip().startswith("@"):
            self._inside(parser.lstrip()[1:], "'parser'")

    def check_options(self, opts: Options) -> None:
        """The files a run writes besides its target: the archive, the write cache."""
        if opts.on_error.archive_path is not None:
            self._inside(str(opts.on_error.archive_path), "'on_error'")
        for key in ("archive", "cache-dir"):
            if key in opts.on.settings:
                self._inside(str(opts.on.settings[key]), f"'on' {key}")

    def _inside(self, path: str, where: str) -> None:
        resolved = Path(os.path.realpath(self.home / Path(path).expanduser()))
        if not any(resolved == r or r in resolved.parents for r in self.roots):
            allowed = ", ".join(str(r) for r in self.roots)
            raise ConfigError(f"{where}: {shown(path, 120)} is outside the directories tasks may use"
                              f" ({allowed}; tdetl serve --files DIR adds one)")


def _before_glob(text: str) -> str:
    """A glob's fixed part (``/data/*.csv`` -> ``/data``): what the pattern can reach."""
    cut = min((text.index(c) for c in "*?[" if c in text), default=len(text))
    return text[:cut] if cut == len(text) else os.path.dirname(text[:cut]) or "."
