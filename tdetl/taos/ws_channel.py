"""One WebSocket to taosAdapter, shared by the connection (``/ws``) and the TMQ consumer
(``/rest/tmq``): connecting, frames out and in with failures as TaosError, and JSON actions whose
reply code is checked."""

from __future__ import annotations

import itertools
import json
from contextlib import ExitStack
from typing import Any
from urllib.parse import quote

from ..dsn import Dsn
from ..errors import TaosError


def ws_url(dsn: Dsn, path: str) -> str:
    """The adapter's URL for ``path`` (``/ws``, ``/rest/tmq``), with the DSN's cloud token."""
    url = f"{dsn.protocol}://{dsn.host or 'localhost'}:{dsn.port or 6041}{path}"
    token = dsn.get("token")
    return f"{url}?token={quote(token)}" if token else url


class WsChannel:
    def __init__(self, url: str, timeout: float, where: str) -> None:
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        self.where = where or url
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._stack = ExitStack()
        try:
            self.ws = self._stack.enter_context(connect(url, max_size=None, compression=None, open_timeout=timeout,
                                                        close_timeout=5, proxy=None))
        except (OSError, WebSocketException, TimeoutError) as e:
            raise self._error(0x000B, f"Unable to establish connection: {e}") from None

    def next_id(self) -> int:
        return next(self._ids)

    def send(self, message: str | bytes) -> None:
        try:
            self.ws.send(message)
        except Exception as e:  # connection closed or broken
            raise self._error(0x000B, f"WebSocket connection lost: {e}") from None

    def recv(self, wait: float | None = None) -> str | bytes:
        wait = self.timeout if wait is None else wait
        try:
            return self.ws.recv(timeout=wait)
        except TimeoutError:
            raise self._error(0x000B, f"no answer from taosAdapter in {wait:g} s") from None
        except Exception as e:  # connection closed or broken
            raise self._error(0x000B, f"WebSocket connection lost: {e}") from None

    def text_reply(self, req_id: int, action: str, wait: float | None = None) -> dict[str, Any]:
        """The JSON reply to request ``req_id``; its error code as TaosError."""
        msg = self.recv(wait)
        if isinstance(msg, bytes):
            raise self._error(0xFFFF, f"expected a text reply to {action}, got {len(msg)} binary bytes")
        reply: dict[str, Any] = json.loads(msg)
        if reply.get("code", 0) != 0:
            raise self._error(reply["code"], reply.get("message", ""))
        if reply.get("req_id") not in (req_id, None):
            raise self._error(0xFFFF, f"reply to req_id {reply.get('req_id')} while waiting for {req_id}")
        return reply

    def call(self, action: str, args: dict[str, Any], wait: float | None = None) -> dict[str, Any]:
        req_id = self.next_id()
        self.send(json.dumps({"action": action, "args": {"req_id": req_id, **args}}))
        return self.text_reply(req_id, action, wait)

    def error_frame(self, text: str, suffix: str = "") -> TaosError:
        """An error the adapter sent as JSON where a binary frame was expected."""
        reply = json.loads(text)
        return self._error(reply.get("code", 0xFFFF), f"{reply.get('message', text)}{suffix}")

    def _error(self, code: int, message: str) -> TaosError:
        return TaosError(code, message, self.where)

    def close(self) -> None:
        self._stack.close()
