"""The native transport without a server: the library is optional, and what we hand it is laid
out as the C API declares it."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from tdetl.errors import DsnError
from tdetl.model import Column
from tdetl.taos import native
from tdetl.taos.fields import pack_fields
from tdetl.types import parse_type


def test_import_does_not_need_libtaos() -> None:
    code = "import tdetl, tdetl.taos.native, tdetl.taos.ws; print('ok')"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_missing_library_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_lib", None)
    with pytest.raises(DsnError, match=r"libtaos.so\) was not found \(tried /nowhere/libtaos.so\);"
                                       r" install the TDengine client package") as e:
        native.load_library("/nowhere/libtaos.so", where="taos://root:***@h:6030/db")
    assert "\n" not in str(e.value)


def test_taos_field_layout_matches_the_c_struct() -> None:
    """TAOS_FIELD is 72 bytes (name[65], int8 type, 2 pad, int32 bytes); the ctypes structure the
    native writes pass and the packed form the WebSocket writes send are the same bytes."""
    assert ctypes.sizeof(native.TaosField) == 72
    assert native.TaosField.bytes.offset == 68 and native.TaosField.type.offset == 65
    cols = [Column("ts", parse_type("TIMESTAMP")), Column("v", parse_type("NCHAR(10)")),
            Column("d", parse_type("DECIMAL(30,6)"))]
    arr = (native.TaosField * 3)()
    for i, c in enumerate(cols):
        arr[i].name, arr[i].type, arr[i].bytes = c.name.encode(), c.type.type_id, c.type.field_bytes()
    assert bytes(arr) == pack_fields(cols)
