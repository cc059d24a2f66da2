"""What the TDengine source and sink both accept beyond the DSN itself."""

from __future__ import annotations

from ...params import Param

TAOS_CONNECTION = (
    Param("libraryPath", "text", None, "path of libtaos.so (native)"),
    Param("configDir", "text", None, "taos.cfg directory (native)"),
    Param("token", "text", None, "cloud token", secret=True),
)
