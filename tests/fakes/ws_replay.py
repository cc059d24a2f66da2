"""A WebSocket server on loopback that replays shared/golden/ws_exchange.json, a real exchange
with taosAdapter 3.3.7.5: each request our client sends must equal the recorded one (request ids
aside); the recorded reply is then sent with the client's request id echoed, as taosAdapter does.
Any difference is recorded and the connection closed, so a test sees it."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from websockets.sync.server import ServerConnection, serve

WRITE_ACTIONS = (3, 4, 5)


def _masked(kind: str, data: str | bytes) -> Any:
    if kind == "text":
        doc = json.loads(data)
        doc.get("args", {}).pop("req_id", None)
        return doc
    b = bytearray(data)
    action = int.from_bytes(b[16:24], "little")
    b[0:8] = bytes(8)
    if action in WRITE_ACTIONS:
        b[8:16] = bytes(8)  # resource id: clients put the req id here for writes
    return bytes(b)


def _req_id(msg: str | bytes) -> int:
    if isinstance(msg, str):
        return json.loads(msg)["args"]["req_id"]
    return int.from_bytes(msg[0:8], "little")


def _reply(frame: dict[str, Any], req_id: int) -> str | bytes:
    if frame["kind"] == "text":
        doc = json.loads(frame["data"])
        if "req_id" in doc:
            doc["req_id"] = req_id
        return json.dumps(doc)
    b = bytearray.fromhex(frame["data"])
    b[26:34] = req_id.to_bytes(8, "little")  # fetch reply: flag, action, version, timing, req_id
    return bytes(b)


class Replay:
    def __init__(self, transcript: Path) -> None:
        self.frames = json.loads(transcript.read_text())["transcript"]
        self.mismatches: list[str] = []
        self.position = 0
        self._server = serve(self._handle, "127.0.0.1", 0, max_size=None, compression=None)
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def done(self) -> bool:
        return self.position == len(self.frames)

    def _handle(self, conn: ServerConnection) -> None:
        frames = self.frames
        while self.position < len(frames):
            want = frames[self.position]
            assert want["dir"] == "client->server"
            try:
                msg = conn.recv(timeout=10)
            except Exception:
                return
            kind = "text" if isinstance(msg, str) else "binary"
            expected = want["data"] if want["kind"] == "text" else bytes.fromhex(want["data"])
            if kind != want["kind"] or _masked(kind, msg) != _masked(want["kind"], expected):
                self.mismatches.append(f"frame {self.position}: expected {str(want['data'])[:120]!r},"
                                       f" got {str(msg)[:120]!r}")
                conn.close()
                return
            req_id = _req_id(msg)
            self.position += 1
            while self.position < len(frames) and frames[self.position]["dir"] == "server->client":
                conn.send(_reply(frames[self.position], req_id))
                self.position += 1

    def __enter__(self) -> Replay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
