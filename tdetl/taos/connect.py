"""Open a TDengine connection from a ``taos``/``tmq`` DSN: no protocol = native (libtaos),
``+ws``/``+wss`` = taosAdapter WebSocket, ``+http``/``+https`` = REST (also TDengine 2.x)."""

from __future__ import annotations

from urllib.parse import quote

from ..dsn import Dsn
from ..errors import DsnError
from .conn import Connection
from .native import NativeConnection
from .rest import RestConnection
from .ws import WsConnection


def open_connection(dsn: Dsn, db: str | None = None, timeout: float = 30.0) -> Connection:
    user = dsn.user or "root"
    password = dsn.password if dsn.password is not None else "taosdata"
    where = dsn.masked()
    if dsn.protocol is None:
        return NativeConnection(dsn.host, dsn.port, user, password, db, dsn.get("libraryPath") or None,
                                dsn.get("configDir") or None, where)
    if dsn.protocol in ("ws", "wss"):
        url = f"{dsn.protocol}://{dsn.host or 'localhost'}:{dsn.port or 6041}/ws"
        token = dsn.get("token")
        if token:
            url += f"?token={quote(token)}"
        return WsConnection(url, user, password, db, timeout, where)
    if dsn.protocol in ("http", "https"):
        return RestConnection(dsn.protocol, dsn.host, dsn.port, user, password, db, dsn.get("token") or None,
                              timeout, where)
    raise DsnError(f"{where}: transport {dsn.protocol!r} is not available for TDengine"
                   " (use taos://, taos+ws://, taos+wss://, taos+http:// or taos+https://)")
