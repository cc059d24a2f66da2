"""What a run writes after a native connection (whose client library sets the umask to 0): no file
or directory any other user can write, and no secret — a password with ``@`` in it, a ``token=``
parameter — in any file or in the output."""

from __future__ import annotations

import os
import signal
import stat
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from .taos_helpers import NATIVE, pytestmark, scalar, sql  # noqa: F401 - TDengine suites
from .test_state import _done
from .test_taos_errors import _cli, _load

PASSWORD = "Pw@Slash99"  # TDengine takes @ in a password, not /
TOKEN = "SeCr3tT0ken42"


def _written(*roots: Path) -> list[Path]:
    return [p for r in roots if r.exists() for p in [r, *r.rglob("*")]]


def _assert_private_and_clean(paths: list[Path]) -> None:
    for p in paths:
        mode = stat.S_IMODE(p.lstat().st_mode)
        assert not mode & 0o022, f"{p} is writable by others: {oct(mode)}"
        if p.is_file():
            data = p.read_bytes()
            assert PASSWORD.encode() not in data and TOKEN.encode() not in data, f"{p} holds a secret"


@pytest.mark.skipif(not NATIVE, reason="needs the native client library (TDETL_TEST_TAOS)")
def test_a_native_backup_writes_private_files_without_secrets(scratch: Any, tmp_path: Path) -> None:
    os.umask(0o022)
    src, back = scratch("tdetl_pv"), scratch("tdetl_pv2")
    _load(NATIVE, src, tmp_path, tables=20, rows=20 * 5_000)
    user = f"tdetl_{uuid.uuid4().hex[:8]}"
    sql(NATIVE, f"CREATE USER {user} PASS '{PASSWORD}'", f"GRANT ALL ON {src}.* TO {user}")
    try:
        host = NATIVE.split("@", 1)[1]
        dsn = f"taos://{user}:{PASSWORD}@{host}/{src}?token={TOKEN}"
        backup, state = tmp_path / "bk", tmp_path / "st" / "run.state"
        state.parent.mkdir()
        args = ("run", "-f", dsn, "-t", f"local:{backup}?file_rows=500", "--batch-rows", "500", "-j", "1",
                "--state", str(state))
        proc = _cli(*args)
        end = time.monotonic() + 60
        while time.monotonic() < end and (_done(state) < 3 if state.exists() else True):
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert (backup / "journal.jsonl").exists() and state.exists(), err
        _assert_private_and_clean(_written(backup, state.parent))  # mid-run: journal, state, data files
        proc = _cli(*args)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert PASSWORD not in out + err and TOKEN not in out + err
        assert (backup / "manifest.json").exists()
        _assert_private_and_clean(_written(backup, state.parent))
        proc = _cli("run", "-f", f"local:{backup}", "-t", f"taos://{user}:{PASSWORD}@{host}/{back}?token={TOKEN}",
                    "-v")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1 and err.count("\n") == 1 and "cannot be used" in err  # one line, masked
        assert PASSWORD not in out + err and TOKEN not in out + err
    finally:
        sql(NATIVE, f"DROP USER {user}")
    assert scalar(NATIVE, f"SELECT COUNT(*) FROM {src}.meters") == 100_000
