from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "formats" / "samples"
GOLDEN = ROOT.parent / "shared" / "golden"


class Background:
    """``tdetl.run`` in a thread, for tests that feed a source while it runs; ``join`` raises what
    the run raised, or returns its summary."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.result: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, args=args, kwargs=kwargs)
        self.thread.start()

    def _run(self, *args: Any, **kwargs: Any) -> None:
        import tdetl

        try:
            self.result["s"] = tdetl.run(*args, **kwargs)
        except BaseException as e:
            self.result["e"] = e

    def join(self, timeout: float = 60) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the run did not end within {timeout}s"
        if "e" in self.result:
            raise self.result["e"]
        return self.result["s"]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real ``tdetl`` entry point in a child process."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "tdetl", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """With TDETL_REQUIRE_TAOS set (.ci/run, once the bundled server is up) a TDengine test that
    skips has not tested anything: it fails, with the reason it gave."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("TDETL_REQUIRE_TAOS") and item.get_closest_marker("taos"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"a TDengine test skipped while TDETL_REQUIRE_TAOS is set: {reason}"


@pytest.fixture
def golden() -> Path:
    if not GOLDEN.is_dir():
        pytest.skip(f"golden blocks not found at {GOLDEN} (shared/ must sit beside the repo)")
    return GOLDEN


from .serve_helpers import service  # noqa: E402, F401 - a tdetl serve process for the serve tests
from .services import influxd, mosquitto, opcua, tansu  # noqa: E402, F401 - service fixtures for every test module
from .sql_servers import mariadb, postgres  # noqa: E402, F401
from .taos_helpers import bundle, db, db2, scratch, server  # noqa: E402, F401 - TDengine fixtures
