"""taosAdapter's WebSocket protocol on ``/ws`` (shared/spec/rawblock.md §6, and the real exchange in
shared/golden/ws_exchange.json): JSON actions in text frames; ``fetch_raw_block`` (7) and the raw
writes ``write_raw_block`` (4) / ``write_raw_block_with_fields`` (5) in binary frames.
taos-ws-py does not offer raw-block writes, so this speaks the protocol itself."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import TaosError
from ..model import Column
from .conn import Connection, Result, refuse_blob
from .fields import PRECISIONS, columns_from_lists, pack_fields
from .ws_channel import WsChannel

ACTION_WRITE_RAW = 3
ACTION_WRITE_RAW_BLOCK = 4
ACTION_WRITE_RAW_BLOCK_WITH_FIELDS = 5
ACTION_FETCH_RAW_BLOCK = 7
_REQ = struct.Struct("<QQQ")  # req_id, resource/message id, action
_FETCH_HEAD = struct.Struct("<QQHQQII")  # flag, action, version, timing, req_id, code, message length


class WsConnection(Connection):
    def __init__(self, url: str, user: str = "root", password: str = "taosdata", db: str | None = None,
                 timeout: float = 30.0, where: str = "") -> None:
        self.channel = WsChannel(url, timeout, where)
        self.where = self.channel.where
        try:
            self.server_version = self.channel.call("version", {})["version"]
            args: dict[str, Any] = {"user": user, "password": password}
            if db:
                args["db"] = db
            self.channel.call("conn", args)
        except BaseException:
            self.channel.close()
            raise

    # -- Connection -----------------------------------------------------------------------------

    def query(self, sql: str) -> Result:
        reply = self.channel.call("query", {"sql": sql})
        if reply.get("is_update", True) or not reply.get("fields_count"):
            return Result(is_update=True, affected_rows=reply.get("affected_rows", 0))
        fields = columns_from_lists(reply["fields_names"], reply["fields_types"], reply["fields_lengths"],
                                    reply.get("fields_precisions"), reply.get("fields_scales"))
        return Result(fields, PRECISIONS.get(reply.get("precision", 0), "ms"), False, 0,
                      self._fetch(reply["id"]))

    def _fetch(self, result_id: int) -> Iterator[bytes]:
        ch = self.channel
        while True:
            req_id = ch.next_id()
            ch.send(_REQ.pack(req_id, result_id, ACTION_FETCH_RAW_BLOCK) + struct.pack("<H", 1))
            msg = ch.recv()
            if isinstance(msg, str):  # an error comes back as JSON
                raise ch.error_frame(msg)
            yield from self._parse_fetch(msg, req_id)
            if msg[_FETCH_HEAD.size + _message_len(msg) + 8] == 1:
                return

    def _parse_fetch(self, msg: bytes, req_id: int) -> Iterator[bytes]:
        flag, action, _ver, _timing, got_req, code, mlen = _FETCH_HEAD.unpack_from(msg)
        if flag != 0xFFFFFFFFFFFFFFFF or action != ACTION_FETCH_RAW_BLOCK:
            raise TaosError(0xFFFF, "malformed fetch_raw_block reply", self.where)
        message = msg[_FETCH_HEAD.size:_FETCH_HEAD.size + mlen].decode(errors="replace")
        if code:
            raise TaosError(code, message, self.where)
        if got_req != req_id:
            raise TaosError(0xFFFF, f"fetch reply for req_id {got_req}, expected {req_id}", self.where)
        pos = _FETCH_HEAD.size + mlen + 8  # skip the result id
        if msg[pos] == 1:  # finished
            return
        (length,) = struct.unpack_from("<I", msg, pos + 1)
        yield memoryview(msg)[pos + 5:pos + 5 + length]

    def write_block(self, table: str, block: bytes | memoryview, fields: Sequence[Column] | None) -> None:
        refuse_blob(block, fields, self.where)
        req_id = self.channel.next_id()
        action = ACTION_WRITE_RAW_BLOCK if fields is None else ACTION_WRITE_RAW_BLOCK_WITH_FIELDS
        name = table.encode()
        rows = int.from_bytes(bytes(block[8:12]), "little")
        head = _REQ.pack(req_id, req_id, action) + struct.pack("<iH", rows, len(name)) + name
        tail = pack_fields(fields) if fields is not None else b""
        self.channel.send(b"".join((head, block, tail)))
        self.channel.text_reply(req_id, "write_raw_block")

    def write_raw(self, raw_type: int, data: bytes | memoryview) -> None:
        req_id = self.channel.next_id()
        head = _REQ.pack(req_id, req_id, ACTION_WRITE_RAW) + struct.pack("<IH", len(data), raw_type)
        self.channel.send(b"".join((head, data)))
        self.channel.text_reply(req_id, "write_raw")

    def close(self) -> None:
        self.channel.close()


def _message_len(msg: bytes) -> int:
    return int.from_bytes(msg[_FETCH_HEAD.size - 4:_FETCH_HEAD.size], "little")
