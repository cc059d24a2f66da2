"""Open a TDengine connection or TMQ consumer from a ``taos``/``tmq`` DSN: no protocol = native
(libtaos), ``+ws``/``+wss`` = taosAdapter WebSocket, ``+http``/``+https`` = REST (connections only;
also TDengine 2.x). The one place that picks a transport and builds its address."""

from __future__ import annotations

from ..dsn import Dsn
from ..errors import DsnError
from .conn import Connection
from .consumer import Consumer, consumer_config
from .native import NativeConnection
from .native_consumer import NativeConsumer
from .rest import RestConnection
from .ws import WsConnection
from .ws_channel import ws_url
from .ws_consumer import WsConsumer

CONSUMER_TIMEOUT = 30.0  # seconds a WebSocket consumer waits for an answer beyond its poll


def _credentials(dsn: Dsn) -> tuple[str, str]:
    return dsn.user or "root", dsn.password if dsn.password is not None else "taosdata"


def open_connection(dsn: Dsn, db: str | None = None, timeout: float = 30.0) -> Connection:
    user, password = _credentials(dsn)
    where = dsn.masked()
    if dsn.protocol is None:
        return NativeConnection(dsn.host, dsn.port, user, password, db, dsn.get("libraryPath") or None,
                                dsn.get("configDir") or None, where)
    if dsn.protocol in ("ws", "wss"):
        return WsConnection(ws_url(dsn, "/ws"), user, password, db, timeout, where)
    if dsn.protocol in ("http", "https"):
        return RestConnection(dsn.protocol, dsn.host, dsn.port, user, password, db, dsn.get("token") or None,
                              timeout, where)
    raise DsnError(f"{where}: transport {dsn.protocol!r} is not available for TDengine"
                   " (use taos://, taos+ws://, taos+wss://, taos+http:// or taos+https://)")


def open_consumer(dsn: Dsn, topics: list[str], group: str, client: str, offset_reset: str,
                  snapshot: bool) -> Consumer:
    """A member of consumer group ``group`` subscribed to ``topics``, auto-commit off."""
    user, password = _credentials(dsn)
    where = dsn.masked()
    conf = consumer_config(user, password, dsn.host, dsn.port, group, client, offset_reset, snapshot)
    if dsn.protocol is None:
        return NativeConsumer(conf, topics, dsn.get("libraryPath") or None, dsn.get("configDir") or None, where)
    if dsn.protocol in ("ws", "wss"):
        return WsConsumer(ws_url(dsn, "/rest/tmq"), conf, topics, CONSUMER_TIMEOUT, where)
    raise DsnError(f"{where}: transport {dsn.protocol!r} is not available for a subscription"
                   " (use tmq://, tmq+ws:// or tmq+wss://)")
