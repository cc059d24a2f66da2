"""Keeps tasks in the state their owners asked for: each running task is a child process of its own
(a crash or a memory blow-up stays in it), restarted with back-off when it fails (``restart=
on-failure``, up to ``max_restarts``), stopped with SIGTERM then SIGKILL. After the service itself
restarts, tasks that were running start again and resume from their checkpoint files."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from ..durable import make_dirs, open_append, replace_text
from ..errors import EXIT_PERMANENT
from ..progress import COUNTERS
from .cron import Cron
from .guard import TOKEN_ENV
from .store import Store

log = logging.getLogger("tdetl.serve")
TICK = 0.25
BACKOFF_MAX = 60.0


def _read(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def default_max_running() -> int:
    """Tasks running at once when --max-running is not given: four per CPU this process may use
    (most tasks wait on servers; each is a process of its own)."""
    return 4 * len(os.sched_getaffinity(0))
SAMPLE = 2.0  # seconds between throughput samples
HISTORY = 1800  # samples kept: the last hour


@dataclass
class Child:
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    started: float = field(default_factory=time.time)


class Supervisor:
    def __init__(self, store: Store, data_dir: Path, cluster: str | None = None, workdir: Path | None = None,
                 max_running: int | None = None) -> None:
        self.store, self.dir = store, data_dir
        self.max_running = max_running or default_max_running()  # the rest wait as "queued"
        self.cluster = cluster  # tasks spread their partitions over this Ray cluster
        self.workdir = workdir  # where tasks run: their relative paths resolve there
        self.children: dict[str, Child] = {}
        self.retry_at: dict[str, float] = {}
        self.history: dict[str, deque[tuple[float, float]]] = {}  # (time, rows/s) per task
        self.next_at: dict[str, float] = {}  # scheduled tasks: when they run next
        self._last_sample = 0.0
        self._last_rows: dict[str, tuple[float, int]] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()  # a change to act on before the next tick (a request, a task's exit)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="tdetl-supervisor", daemon=True)

    def task_dir(self, tid: str) -> Path:
        d = self.dir / "tasks" / tid
        make_dirs(d)
        return d

    def start(self) -> None:
        for t in self.store.all():  # the service restarted: what was running runs again
            self._add_to_totals(t["id"])  # a run whose end this service never saw (killed with it) still counts
            if t["wanted"] == "running" and t["state"] not in ("finished", "failed"):
                self.store.update(t["id"], state="restarting")
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5)
        with self._lock:
            for tid in list(self.children):
                self._terminate(tid)

    # -- what the API asks ------------------------------------------------------------------------

    def want(self, tid: str, wanted: str) -> None:
        self.next_at.pop(tid, None)
        again = {"restarts": 0, "last_error": None, "state": "created"} if wanted == "running" else {}
        self.store.update(tid, wanted=wanted, **again)
        self.retry_at.pop(tid, None)
        self.wake()

    def wake(self) -> None:
        """Act on the store now rather than at the next tick."""
        self._wake.set()

    def next_run(self, t: dict[str, Any]) -> float:
        """When a scheduled task runs next (epoch seconds): its schedule's first time after the task
        was created or last finished."""
        tid = t["id"]
        if tid not in self.next_at:
            after = datetime.fromtimestamp(t["updated"], timezone.utc)
            d = t["definition"]
            self.next_at[tid] = Cron(d["schedule"], d.get("timezone")).next_after(after).timestamp()
        return self.next_at[tid]

    def forget(self, tid: str) -> None:
        """A deleted task: its process goes now."""
        with self._lock:
            self._terminate(tid)
            self.retry_at.pop(tid, None)

    def status(self, tid: str) -> dict[str, Any]:
        """The counters the task's process writes every second (this run, or the last one once it ended)."""
        d = self.task_dir(tid)
        return _read(d / "status.json") or _read(d / "last_run.json")

    def totals(self, tid: str) -> dict[str, int]:
        """Counters over every run of the task: the ended runs' sum plus this run's."""
        d = self.task_dir(tid)
        done, now = _read(d / "totals.json"), _read(d / "status.json")
        return {k: int(done.get(k, 0)) + int(now.get(k, 0)) for k in COUNTERS}

    def last_success(self, tid: str) -> float | None:
        """When a run of the task last ended with everything written (epoch seconds)."""
        try:
            return float((self.task_dir(tid) / "last_success").read_text())
        except (OSError, ValueError):
            return None

    def _add_to_totals(self, tid: str) -> None:
        """A run that ended (or whose end this service never saw) into the task's totals, once: its
        counters move to last_run.json."""
        d = self.task_dir(tid)
        run = _read(d / "status.json")
        if not run:
            return
        done = _read(d / "totals.json")
        replace_text(d / "totals.json", json.dumps({k: int(done.get(k, 0)) + int(run.get(k, 0)) for k in COUNTERS}))
        os.replace(d / "status.json", d / "last_run.json")

    def _sample(self) -> None:
        now = time.time()
        if now - self._last_sample < SAMPLE:
            return
        self._last_sample = now
        for tid in list(self.children):
            rows = int(self.status(tid).get("rows_written", 0))
            before = self._last_rows.get(tid)
            self._last_rows[tid] = (now, rows)
            if before is not None and rows >= before[1]:
                rate = (rows - before[1]) / max(1e-6, now - before[0])
                self.history.setdefault(tid, deque(maxlen=HISTORY)).append((now, rate))

    def log_tail(self, tid: str, n: int) -> list[str]:
        path = self.task_dir(tid) / "log.txt"
        if not path.exists():
            return []
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - 64 * 1024))
            lines = fh.read().decode("utf-8", "replace").splitlines()
        return lines[-n:] if n else []

    # -- the loop ---------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:  # the supervisor must outlive any one task's trouble
                log.exception("supervisor tick failed")
            self._wake.wait(TICK)
            self._wake.clear()

    def _tick(self) -> None:
        with self._lock:
            self._sample()
            for t in self.store.all():
                tid, child = t["id"], self.children.get(t["id"])
                if child is not None and child.proc.poll() is not None:
                    self._ended(t, child)  # what comes next is decided on the next tick, from the new row
                    continue
                schedule = t["definition"].get("schedule")
                if schedule and t["wanted"] == "running" and child is None and t["state"] in ("created", "finished"):
                    if time.time() >= self.next_run(t):  # a scheduled task runs at its times, then waits
                        self.next_at.pop(tid, None)
                        self._spawn(t)
                    continue
                if t["wanted"] == "running" and child is None and t["state"] not in ("finished", "failed"):
                    if time.time() < self.retry_at.get(tid, 0):
                        continue
                    if len(self.children) >= self.max_running:
                        if t["state"] != "queued":
                            self.store.update(tid, state="queued")
                        continue
                    self._spawn(t)
                elif t["wanted"] == "stopped" and child is not None:
                    self.store.update(tid, state="stopping")
                    self._terminate(tid)
                    self.store.update(tid, state="stopped")
                elif t["wanted"] == "stopped" and t["state"] in ("running", "restarting", "created"):
                    self.store.update(tid, state="stopped")

    def _spawn(self, t: dict[str, Any]) -> None:
        d = self.task_dir(t["id"])
        logf = open(open_append(d / "log.txt"), "ab")
        (d / "status.json").unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}  # a task has no use for the service's token
        proc = subprocess.Popen([sys.executable, "-m", "tdetl.serve.worker"], stdin=subprocess.PIPE, stdout=logf,
                                stderr=logf, env={"OPENBLAS_NUM_THREADS": "1", **env, "PYTHONUNBUFFERED": "1"},
                                start_new_session=True,
                                cwd=self.workdir)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"definition": t["definition"], "state": str(d / "state.json"),
                                     "status": str(d / "status.json"), "cluster": self.cluster}).encode())
        proc.stdin.close()
        self.children[t["id"]] = Child(proc, logf)
        threading.Thread(target=self._on_exit, args=(proc,), name=f"tdetl-wait-{proc.pid}", daemon=True).start()
        self.store.update(t["id"], state="running")
        log.info("task %s started (pid %d)", t["id"], proc.pid)

    def _on_exit(self, proc: subprocess.Popen[bytes]) -> None:
        proc.wait()
        self._wake.set()

    def _ended(self, t: dict[str, Any], child: Child) -> None:
        tid = t["id"]
        del self.children[tid]
        child.log.close()
        self._add_to_totals(tid)
        self._last_rows.pop(tid, None)
        rc = child.proc.returncode
        self.wake()  # a place for a queued task
        if t["wanted"] != "running":
            self.store.update(tid, state="stopped")
            return
        if rc == 0:  # done; a scheduled task waits for its next time
            replace_text(self.task_dir(tid) / "last_success", f"{time.time():.3f}")
            again = "running" if t["definition"].get("schedule") else "finished"
            self.store.update(tid, state="finished", wanted=again)
            return
        error = next((ln for ln in reversed(self.log_tail(tid, 50)) if ln.startswith("tdetl: error:")),
                     f"the task's process ended with status {rc}")
        d = t["definition"]
        if rc == EXIT_PERMANENT:  # running it again changes nothing (a wrong password, a bad parser)
            self.store.update(tid, state="failed", last_error=error)
            log.warning("task %s failed (%s); not restarted: the error is permanent", tid, error)
        elif d.get("restart", "on-failure") == "on-failure" and t["restarts"] < d.get("max_restarts", 10):
            delay = min(BACKOFF_MAX, 2.0 ** t["restarts"])
            self.retry_at[tid] = time.time() + delay
            self.store.update(tid, state="restarting", last_error=error, restarts=t["restarts"] + 1)
            log.warning("task %s failed (%s); restarting in %.0f s", tid, error, delay)
        else:
            self.store.update(tid, state="failed", last_error=error)

    def _terminate(self, tid: str) -> None:
        child = self.children.pop(tid, None)
        if child is None:
            return
        self._add_to_totals(tid)
        self._last_rows.pop(tid, None)
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
            try:
                child.proc.wait(10)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait(5)
        child.log.close()
