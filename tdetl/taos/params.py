"""What every TDengine DSN (taos, tmq; source or target) accepts beyond the DSN itself: read by
:func:`tdetl.taos.connect.open_connection`."""

from __future__ import annotations

from ..params import Param

TAOS_CONNECTION = (
    Param("libraryPath", "text", None, "path of libtaos.so (native)"),
    Param("configDir", "text", None, "taos.cfg directory (native)"),
    Param("token", "text", None, "cloud token", secret=True),
)
