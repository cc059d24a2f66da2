from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "formats" / "samples"
GOLDEN = ROOT.parent / "shared" / "golden"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real ``tdetl`` entry point in a child process."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "tdetl", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


@pytest.fixture
def golden() -> Path:
    if not GOLDEN.is_dir():
        pytest.skip(f"golden blocks not found at {GOLDEN} (shared/ must sit beside the repo)")
    return GOLDEN


from .services import influxd, mosquitto, opcua, tansu  # noqa: E402, F401 - service fixtures for every test module
