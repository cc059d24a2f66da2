"""``--state <file>``: a run's checkpoint (partition -> position) kept in a file after every flush,
so a rerun of the same source into the same target resumes where an interrupted run left off, for
every target whose flush is durable (TDengine, brokers), not only those that keep their own (a
backup's journal). The file is replaced atomically; a run that finishes removes it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .durable import sync_path
from .errors import ConfigError

FORMAT = "tdetl-state/1"


class StateFile:
    def __init__(self, path: Path, source: str, target: str) -> None:
        self.path, self.source, self.target = path, source, target

    def load(self) -> dict[str, Any]:
        """The checkpoint an interrupted run of the same source and target left, or {}."""
        if not self.path.exists():
            return {}
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"--state {self.path}: not a tdetl state file ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("checkpoint"), dict):
            raise ConfigError(f"--state {self.path}: not a tdetl state file (no {FORMAT!r} checkpoint)")
        if (_endpoint(doc.get("source")), _endpoint(doc.get("target"))) != (_endpoint(self.source),
                                                                           _endpoint(self.target)):
            raise ConfigError(f"--state {self.path}: holds the state of {doc.get('source')} -> {doc.get('target')},"
                              " not of this run; give another file")
        return dict(doc["checkpoint"])

    def save(self, checkpoint: dict[str, Any]) -> None:
        doc = {"format": FORMAT, "source": self.source, "target": self.target,
               "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "checkpoint": checkpoint}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        sync_path(self.path.parent)

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)


def _endpoint(dsn: Any) -> str:
    """A DSN without its run parameters: a rerun may pace or tune itself differently."""
    return str(dsn).split("?", 1)[0]
