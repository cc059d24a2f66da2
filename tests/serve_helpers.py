"""A real ``tdetl serve`` process on loopback for the tests (and the serve benchmark): started on a
free port with tasks allowed to use files beside its data directory, its token read back."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .services import free_port, wait_port


class Service:
    def __init__(self, data: Path, token: str | None = None, extra: tuple[str, ...] = ()) -> None:
        self.data, self.token, self.port, self.extra = data, token, free_port(), extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        """Tasks may use files beside the data directory (the tests' tmp_path)."""
        args = [sys.executable, "-m", "tdetl", "serve", "--port", str(self.port), "--data-dir", str(self.data),
                "--files", str(self.data.parent), *self.extra]
        if self.token:
            args.append(f"--token={self.token}")  # a chosen token may start with "-"
        log = self.data.parent / f"serve-{self.port}.log"
        self.proc = subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, "tdetl serve", log, timeout=30)
        if not self.token:  # made on first start
            self.token = (self.data / "token").read_text().strip()
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)

    def call(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        import httpx

        return httpx.request(method, f"http://127.0.0.1:{self.port}{path}", headers=headers, timeout=30, **kw)

    def wait_for(self, tid: str, cond: Callable[[dict[str, Any]], bool], timeout: float = 120) -> dict[str, Any]:
        end = time.monotonic() + timeout
        task: dict[str, Any] = {}
        while time.monotonic() < end:
            task = self.call("GET", f"/api/tasks/{tid}").json()
            if cond(task):
                return task
            time.sleep(0.2)
        raise AssertionError(f"task {tid} not there within {timeout}s: {task}")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    s = Service(tmp_path / "data").start()
    yield s
    s.stop()


