"""tdetl serve on a bad day (issue 27): a permanent error fails the task at once with its line, a
temporary one keeps the back-off; --max-running caps the tasks running at once, the rest wait as
queued and start when a place frees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tdetl.errors import (
    BackupError,
    ConfigError,
    DataError,
    DsnError,
    SinkError,
    SourceError,
    TaosError,
    Unreachable,
    temporary,
)

from .samples import PARSER
from .services import Mosquitto, free_port

pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from .serve_helpers import Service


def test_permanent_and_temporary_errors_are_told_apart() -> None:
    assert not temporary(TaosError(0x0357, "Authentication failure"))
    assert not temporary(TaosError(0x0388, "Database not exist"))
    assert temporary(TaosError(0x000B, "Unable to establish connection"))
    assert temporary(TaosError(0x03D3, "Conflict transaction not completed"))
    for e in (DsnError("x"), ConfigError("x"), DataError("x"), BackupError("x")):
        assert not temporary(e)
    for e in (SourceError("broker down"), SinkError("x"), Unreachable("x"), OSError("x"), TimeoutError()):
        assert temporary(e)
    assert not temporary(ValueError("a bug"))


def test_a_permanent_error_fails_the_task_at_once(service: Service, tmp_path: Path) -> None:
    r = service.call("POST", "/api/tasks", json={"from": "csv:missing.csv", "parser": PARSER,
                                                 "to": f"local:{tmp_path / 'b'}"})
    task = service.wait_for(r.json()["id"], lambda t: t["state"] in ("failed", "restarting"), timeout=60)
    assert task["state"] == "failed" and task["restarts"] == 0, task
    assert "no such file or directory" in task["last_error"] and "missing.csv" in task["last_error"]


def test_a_temporary_error_is_restarted_with_back_off(service: Service, tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("ts,v\n2024-01-01T00:00:00Z,1\n")
    closed = free_port()  # nothing listens: the target does not answer
    r = service.call("POST", "/api/tasks", json={"from": "csv:m.csv",
                                                 "to": f"taos+ws://root:taosdata@127.0.0.1:{closed}/db"})
    task = service.wait_for(r.json()["id"], lambda t: t["restarts"] >= 1, timeout=60)
    assert task["state"] in ("restarting", "running") and "Unable to establish connection" in task["last_error"]


def test_max_running_queues_the_rest(tmp_path: Path, mosquitto: Mosquitto) -> None:
    s = Service(tmp_path / "data", extra=("--max-running", "1")).start()
    try:
        ids = []
        for i in range(2):  # subscriptions: each runs until stopped
            src = f"mqtt://127.0.0.1:{mosquitto.port}?topics=q{i}/%23::1&client_id=q{i}{os.getpid()}"
            task = {"from": src, "to": f"local:{tmp_path / f'b{i}'}"}
            ids.append(s.call("POST", "/api/tasks", json=task).json()["id"])
        first = s.wait_for(ids[0], lambda t: t["state"] == "running")
        second = s.wait_for(ids[1], lambda t: t["state"] == "queued")
        assert first["state"] == "running" and second["state"] == "queued"
        s.call("POST", f"/api/tasks/{ids[0]}/stop")
        s.wait_for(ids[0], lambda t: t["state"] == "stopped")
        s.wait_for(ids[1], lambda t: t["state"] == "running" and "elapsed" in t["counters"], timeout=30)
    finally:
        s.stop()
