"""The WebSocket TMQ consumer: taosAdapter's ``/rest/tmq`` over the shared WebSocket channel."""

from __future__ import annotations

import json
import struct
from typing import Any

from ..errors import TaosError
from .consumer import KINDS, Assignment, Consumer, Message
from .ws_channel import WsChannel

_FETCH_RAW = struct.Struct("<QQQQIH")  # timing, req_id, message_id, 3, raw_len, raw_type


class WsConsumer(Consumer):
    """taosAdapter's ``/rest/tmq``: JSON actions; ``fetch_raw`` answers in a binary frame. The
    adapter keeps one message per connection, so a message is committed by offset, not handle."""

    def __init__(self, url: str, conf: dict[str, str], topics: list[str], timeout: float, where: str) -> None:
        self.channel = WsChannel(url, timeout, where)
        self.where = self.channel.where
        self.timeout = timeout
        self._last = -1  # the message the adapter holds
        args: dict[str, Any] = {
            "user": conf.pop("td.connect.user"), "password": conf.pop("td.connect.pass"),
            "group_id": conf.pop("group.id"), "client_id": conf.pop("client.id"),
            "offset_reset": conf.pop("auto.offset.reset"), "auto_commit": conf.pop("enable.auto.commit"),
            "snapshot_enable": conf.pop("experimental.snapshot.enable"),
            "with_table_name": conf.pop("msg.with.table.name"), "topics": topics}
        conf.pop("td.connect.ip", None)
        conf.pop("td.connect.port", None)
        if conf:
            args["config"] = conf
        try:
            self._call("subscribe", args)
        except BaseException:
            self.channel.close()
            raise

    def _call(self, action: str, args: dict[str, Any], wait: float | None = None) -> dict[str, Any]:
        """An action; its error names the action (a consumer's failures are otherwise alike)."""
        try:
            return self.channel.call(action, args, wait)
        except TaosError as e:
            if e.code == 0x000B:
                raise
            raise TaosError(e.code, f"{e.message} ({action})", self.where) from None

    def poll(self, timeout: float) -> Message | None:
        reply = self._call("poll", {"blocking_time": int(timeout * 1000)}, self.timeout + timeout)
        if not reply.get("have_message"):
            return None
        mid = reply["message_id"]
        msg = Message(KINDS.get(reply["message_type"], str(reply["message_type"])), reply["topic"],
                      reply["database"], reply["vgroup_id"], reply["offset"], handle=(mid, -1))
        if msg.offset >= 0:  # the offset shown is where the message starts; commit where it ends
            pos = self._call("position", {"topic_vgroup_ids": [{"topic": msg.topic, "vgroup_id": msg.vgroup}]})
            msg.handle = (mid, (pos.get("position") or [-1])[0])
        self._last = mid
        req_id = self.channel.next_id()
        self.channel.send(json.dumps({"action": "fetch_raw", "args": {"req_id": req_id, "message_id": mid}}))
        frame = self.channel.recv()
        if isinstance(frame, str):
            raise self.channel.error_frame(frame, " (fetch_raw)")
        _timing, _req, _mid, _kind, length, raw_type = _FETCH_RAW.unpack_from(frame)
        msg.raw_type = raw_type
        msg.raw = memoryview(frame)[_FETCH_RAW.size:_FETCH_RAW.size + length]
        return msg

    def commit(self, message: Message) -> None:
        mid, end = message.handle
        if end >= 0:
            self._call("commit_offset", {"topic": message.topic, "vgroup_id": message.vgroup, "offset": end})
        elif mid == self._last:  # a snapshot offset has no number: commit all this consumer has read
            self._call("commit", {"message_id": mid})
        # else: a later message of this consumer commits past it

    def release(self, message: Message) -> None:
        message.raw = memoryview(b"")

    def json_meta(self, message: Message) -> dict[str, Any] | None:
        reply = self._call("fetch_json_meta", {"message_id": message.handle[0]})
        data = reply.get("data")
        return data if isinstance(data, dict) else (json.loads(data) if data else None)

    def assignment(self, topic: str) -> list[Assignment]:
        reply = self._call("assignment", {"topic": topic})
        return [Assignment(a["vgroup_id"], a["offset"], a["begin"], a["end"]) for a in reply.get("assignment") or []]

    def seek(self, topic: str, vgroup: int, offset: int) -> None:
        self._call("seek", {"topic": topic, "vgroup_id": vgroup, "offset": offset})

    def close(self) -> None:
        try:
            self._call("unsubscribe", {}, 5.0)
        except TaosError:
            pass
        self.channel.close()
