"""Task definitions and their state in SQLite under the data directory (mode 0600: DSNs may carry
passwords). One row per task; the definition is the JSON a client posted, validated."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

STATES = ("created", "running", "stopping", "stopped", "finished", "failed", "restarting")
_SCHEMA = """CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, definition TEXT NOT NULL, wanted TEXT NOT NULL,
    state TEXT NOT NULL, last_error TEXT, restarts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL, updated REAL NOT NULL)"""


class Store:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / "tasks.sqlite"
        fresh = not path.exists()
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        if fresh:
            os.chmod(path, 0o600)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(_SCHEMA)
        self.lock = threading.Lock()

    def add(self, name: str, definition: dict[str, Any], wanted: str) -> str:
        tid = uuid.uuid4().hex[:12]
        now = time.time()
        with self.lock:
            self.db.execute("INSERT INTO tasks VALUES (?, ?, ?, ?, 'created', NULL, 0, ?, ?)",
                            (tid, name, json.dumps(definition), wanted, now, now))
        return tid

    def get(self, tid: str) -> dict[str, Any] | None:
        with self.lock:
            row = self.db.execute("SELECT * FROM tasks WHERE id = ?", (tid,)).fetchone()
        return _row(row) if row else None

    def all(self) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.db.execute("SELECT * FROM tasks ORDER BY created").fetchall()
        return [_row(r) for r in rows]

    def update(self, tid: str, **fields: Any) -> None:
        if "definition" in fields:
            fields["definition"] = json.dumps(fields["definition"])
        fields["updated"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.lock:
            self.db.execute(f"UPDATE tasks SET {sets} WHERE id = ?", (*fields.values(), tid))

    def delete(self, tid: str) -> None:
        with self.lock:
            self.db.execute("DELETE FROM tasks WHERE id = ?", (tid,))


def _row(r: tuple[Any, ...]) -> dict[str, Any]:
    keys = ("id", "name", "definition", "wanted", "state", "last_error", "restarts", "created", "updated")
    d = dict(zip(keys, r))
    d["definition"] = json.loads(d["definition"])
    return d
