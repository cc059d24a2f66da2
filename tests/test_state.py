"""``--state <file>``: a TDengine-to-TDengine run killed mid-way resumes from its checkpoint file,
skipping what was done; targets without a durable flush refuse it; a file of another run is refused."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

import tdetl
from tdetl.errors import ConfigError

from .taos_helpers import SERVERS, pytestmark, scalar  # noqa: F401 - TDengine suites
from .test_taos_errors import _cli, _load


def _done(state: Path) -> int:
    """Tables the state file records as copied whole."""
    if not state.exists():
        return 0
    return sum(v == {"done": True} for v in json.loads(state.read_text())["checkpoint"].values())


def test_a_killed_sync_resumes_from_its_state_file(scratch: Any, tmp_path: Path) -> None:
    server = SERVERS[0]
    one, two = scratch("tdetl_st"), scratch("tdetl_st2")
    _load(server, one, tmp_path, tables=30, rows=30 * 50)
    state = tmp_path / "run.state"
    proc = _cli("run", "-f", f"{server}/{one}", "-t", f"{server}/{two}?assert&interval=100ms&buffer-bytes=1",
                "--state", str(state), "-q", "-j", "1")
    end = time.monotonic() + 60
    while time.monotonic() < end and _done(state) < 5:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    done = _done(state)
    assert 5 <= done < 30, done
    s = tdetl.run(f"{server}/{one}", f"{server}/{two}", state=str(state))
    assert s.partitions_skipped >= done and s.rows_written <= (30 - done) * 50
    assert tdetl.verify(f"{server}/{one}", f"{server}/{two}")["differences"] == []
    assert not state.exists()  # finished: the next run starts afresh


def test_state_is_refused_where_it_cannot_hold(scratch: Any, tmp_path: Path) -> None:
    server = SERVERS[0]
    one = scratch("tdetl_st")
    _load(server, one, tmp_path, tables=2, rows=20)
    with pytest.raises(ConfigError, match="the duckdb target makes its data durable only at the end of a run"):
        tdetl.run(f"{server}/{one}", f"duckdb:{tmp_path / 'x.duckdb'}", state=str(tmp_path / "s"))
    other = tmp_path / "other.state"
    other.write_text(json.dumps({"format": "tdetl-state/1", "source": "csv:x", "target": "local:y", "checkpoint": {}}))
    with pytest.raises(ConfigError, match="holds the state of csv:x -> local:y, not of this run"):
        tdetl.run(f"{server}/{one}", f"{server}/{scratch('tdetl_st3')}?assert", state=str(other))
    other.write_text("{")
    with pytest.raises(ConfigError, match="not a tdetl state file"):
        tdetl.run(f"{server}/{one}", f"{server}/{scratch('tdetl_st3')}?assert", state=str(other))
