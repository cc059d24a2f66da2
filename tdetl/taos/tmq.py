"""TMQ consumers: the native one (libtaos's ``tmq_*`` API through ctypes) and the WebSocket one
(taosAdapter's ``/rest/tmq``), behind one small interface. A polled message is read as TMQ raw
(``tmq_get_raw`` / ``fetch_raw``: shared/spec/rawblock.md §5), the one form that both transports
give, that can be decoded (``tmq_raw.py``) and written back unchanged (``tmq_write_raw``).

Offsets are committed per message (``tmq_commit_sync(msg)`` commits where that message ends, also
for snapshot offsets, which are no plain numbers), so a message is kept until it is committed.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import struct
from abc import ABC, abstractmethod
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from ..errors import TaosError
from .native import TmqRaw as _Raw
from .native import keeping_umask, load_library

DATA, META, METADATA = 1, 2, 3  # tmq_res_t
_KINDS = {DATA: "data", META: "meta", METADATA: "metadata", 4: "rawdata"}


@dataclass
class Message:
    """One polled message: where it came from and its TMQ raw form (``raw`` is only valid until
    the message is released)."""

    kind: str
    topic: str
    db: str
    vgroup: int
    offset: int  # the server's offset (a WAL version; -1 for snapshot data)
    raw_type: int = 0
    raw: memoryview = field(default_factory=lambda: memoryview(b""))
    handle: Any = None  # what committing and releasing it take
    owner: str = ""  # the consumer (pipeline partition) that polled it


@dataclass(frozen=True)
class Assignment:
    vgroup: int
    current: int
    begin: int
    end: int


class Consumer(ABC):
    """One member of a consumer group, used by one thread."""

    @abstractmethod
    def poll(self, timeout: float) -> Message | None:
        """The next message (its raw form filled in), or None after ``timeout`` seconds."""

    @abstractmethod
    def commit(self, message: Message) -> None:
        """Commit the offset after ``message`` for its vgroup."""

    @abstractmethod
    def release(self, message: Message) -> None:
        """Free what ``message`` holds (its raw bytes become invalid)."""

    def drop_raw(self, message: Message) -> None:
        """Free the raw bytes once read; what committing needs stays until :meth:`release`."""
        message.raw = memoryview(b"")

    def commit_all(self, messages: list[Message]) -> None:
        """Commit after the last of ``messages`` of each topic and vgroup, then free them all."""
        last: dict[tuple[str, int], Message] = {}
        for m in messages:
            last[(m.topic, m.vgroup)] = m
        try:
            for m in last.values():
                self.commit(m)
        finally:
            for m in messages:
                self.release(m)

    @abstractmethod
    def json_meta(self, message: Message) -> dict[str, Any] | None:
        """A meta message as TDengine's JSON (create/alter/drop), for logs and decoded sinks."""

    @abstractmethod
    def assignment(self, topic: str) -> list[Assignment]: ...

    @abstractmethod
    def seek(self, topic: str, vgroup: int, offset: int) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class _Assignment(ctypes.Structure):
    _fields_ = [("vgId", ctypes.c_int32), ("currentOffset", ctypes.c_int64), ("begin", ctypes.c_int64),
                ("end", ctypes.c_int64)]


_declared: set[int] = set()


def _declare(lib: ctypes.CDLL) -> None:
    if id(lib) in _declared:
        return
    vp, cp, i32, i64 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_int64
    sigs = {
        "tmq_conf_new": (vp, []),
        "tmq_conf_set": (i32, [vp, cp, cp]),
        "tmq_conf_destroy": (None, [vp]),
        "tmq_list_new": (vp, []),
        "tmq_list_append": (i32, [vp, cp]),
        "tmq_list_destroy": (None, [vp]),
        "tmq_consumer_new": (vp, [vp, cp, i32]),
        "tmq_subscribe": (i32, [vp, vp]),
        "tmq_consumer_poll": (vp, [vp, i64]),
        "tmq_consumer_close": (i32, [vp]),
        "tmq_commit_sync": (i32, [vp, vp]),
        "tmq_get_topic_assignment": (i32, [vp, cp, ctypes.POINTER(ctypes.POINTER(_Assignment)),
                                           ctypes.POINTER(i32)]),
        "tmq_free_assignment": (None, [vp]),
        "tmq_offset_seek": (i32, [vp, cp, i32, i64]),
        "tmq_get_res_type": (i32, [vp]),
        "tmq_get_topic_name": (cp, [vp]),
        "tmq_get_db_name": (cp, [vp]),
        "tmq_get_vgroup_id": (i32, [vp]),
        "tmq_get_vgroup_offset": (i64, [vp]),
        "tmq_err2str": (cp, [i32]),
        "tmq_get_raw": (i32, [vp, ctypes.POINTER(_Raw)]),
        "tmq_free_raw": (None, [_Raw]),
        "tmq_get_json_meta": (vp, [vp]),
        "tmq_free_json_meta": (None, [vp]),
        "taos_errno": (i32, [vp]),
        "taos_free_result": (None, [vp]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    _declared.add(id(lib))


def consumer_config(user: str, password: str, host: str | None, port: int | None, group: str, client: str,
                    offset_reset: str, snapshot: bool, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The ``tmq_conf_set`` keys tdetl sets: auto-commit off (offsets follow the sink)."""
    conf = {"td.connect.user": user, "td.connect.pass": password, "group.id": group, "client.id": client,
            "auto.offset.reset": offset_reset, "enable.auto.commit": "false",
            "experimental.snapshot.enable": "true" if snapshot else "false", "msg.with.table.name": "true"}
    if host:
        conf["td.connect.ip"] = host
    if port:
        conf["td.connect.port"] = str(port)
    conf.update(extra or {})
    return conf


class NativeConsumer(Consumer):
    def __init__(self, conf: dict[str, str], topics: list[str], library: str | None, config_dir: str | None,
                 where: str) -> None:
        self.lib = load_library(library, config_dir, where)
        _declare(self.lib)
        self.where = where
        c = self.lib.tmq_conf_new()
        try:
            for k, v in conf.items():
                if self.lib.tmq_conf_set(c, k.encode(), v.encode()) != 0:
                    shown = "***" if "pass" in k else v
                    raise TaosError(0x0118, f"TMQ option {k}={shown!r} is not accepted", where)
            err = ctypes.create_string_buffer(512)
            self.tmq = keeping_umask("consumer", lambda: self.lib.tmq_consumer_new(c, err, len(err)))
        finally:
            self.lib.tmq_conf_destroy(c)
        if not self.tmq:
            raise TaosError(0x000B, err.value.decode(errors="replace") or "cannot create the consumer", where)
        lst = self.lib.tmq_list_new()
        try:
            for t in topics:
                self.lib.tmq_list_append(lst, t.encode())
            self._check(self.lib.tmq_subscribe(self.tmq, lst), f"subscribe to {','.join(topics)}")
        except BaseException:
            self.lib.tmq_consumer_close(self.tmq)
            self.tmq = None
            raise
        finally:
            self.lib.tmq_list_destroy(lst)

    def _check(self, code: int, what: str) -> None:
        if code:
            text = self.lib.tmq_err2str(code)
            raise TaosError(code, (text.decode(errors="replace") if text else "error") + f" ({what})", self.where)

    def poll(self, timeout: float) -> Message | None:
        res = self.lib.tmq_consumer_poll(self.tmq, int(timeout * 1000))
        if not res:
            return None
        code = self.lib.taos_errno(res)
        if code:
            self.lib.taos_free_result(res)
            self._check(code, "poll")
        kind = self.lib.tmq_get_res_type(res)
        msg = Message(_KINDS.get(kind, str(kind)), (self.lib.tmq_get_topic_name(res) or b"").decode(),
                      (self.lib.tmq_get_db_name(res) or b"").decode(), self.lib.tmq_get_vgroup_id(res),
                      self.lib.tmq_get_vgroup_offset(res), handle=[res, None])
        raw = _Raw()
        code = self.lib.tmq_get_raw(res, ctypes.byref(raw))
        if code:
            self.lib.taos_free_result(res)
            self._check(code, "get raw")
        msg.handle[1] = raw
        msg.raw_type = raw.raw_type
        msg.raw = memoryview((ctypes.c_char * raw.raw_len).from_address(raw.raw)).cast("B") if raw.raw_len \
            else memoryview(b"")
        return msg

    def commit(self, message: Message) -> None:
        self._check(self.lib.tmq_commit_sync(self.tmq, message.handle[0]), "commit")

    def drop_raw(self, message: Message) -> None:
        raw = message.handle[1]
        message.raw = memoryview(b"")
        if raw is not None:
            self.lib.tmq_free_raw(raw)
            message.handle[1] = None

    def release(self, message: Message) -> None:
        res, raw = message.handle
        if res is None:
            return
        message.raw = memoryview(b"")
        if raw is not None:
            self.lib.tmq_free_raw(raw)
        self.lib.taos_free_result(res)
        message.handle = [None, None]

    def json_meta(self, message: Message) -> dict[str, Any] | None:
        p = self.lib.tmq_get_json_meta(message.handle[0])
        if not p:
            return None
        try:
            text = ctypes.string_at(p)
        finally:
            self.lib.tmq_free_json_meta(p)
        return json.loads(text) if text else None

    def assignment(self, topic: str) -> list[Assignment]:
        arr = ctypes.POINTER(_Assignment)()
        n = ctypes.c_int32(0)
        self._check(self.lib.tmq_get_topic_assignment(self.tmq, topic.encode(), ctypes.byref(arr), ctypes.byref(n)),
                    f"assignment of {topic}")
        try:
            return [Assignment(arr[i].vgId, arr[i].currentOffset, arr[i].begin, arr[i].end) for i in range(n.value)]
        finally:
            if arr:
                self.lib.tmq_free_assignment(arr)

    def seek(self, topic: str, vgroup: int, offset: int) -> None:
        self._check(self.lib.tmq_offset_seek(self.tmq, topic.encode(), vgroup, offset),
                    f"seek vgroup {vgroup} to {offset}")

    def close(self) -> None:
        if self.tmq:
            self.lib.tmq_consumer_close(self.tmq)
            self.tmq = None


_FETCH_RAW = struct.Struct("<QQQQIH")  # timing, req_id, message_id, 3, raw_len, raw_type


class WsConsumer(Consumer):
    """taosAdapter's ``/rest/tmq``: JSON actions; ``fetch_raw`` answers in a binary frame. The
    adapter keeps one message per connection, so a message is committed by offset, not handle."""

    def __init__(self, url: str, conf: dict[str, str], topics: list[str], timeout: float, where: str) -> None:
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        self.where = where
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._last = -1  # the message the adapter holds
        self._stack = ExitStack()
        try:
            self.ws = self._stack.enter_context(connect(url, max_size=None, compression=None, open_timeout=timeout,
                                                        close_timeout=5, proxy=None))
        except (OSError, WebSocketException, TimeoutError) as e:
            raise TaosError(0x000B, f"Unable to establish connection: {e}", where) from None
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
            self._stack.close()
            raise

    def _send(self, text: str) -> None:
        try:
            self.ws.send(text)
        except Exception as e:
            raise TaosError(0x000B, f"WebSocket connection lost: {e}", self.where) from None

    def _recv(self, wait: float) -> str | bytes:
        try:
            return self.ws.recv(timeout=wait)
        except TimeoutError:
            raise TaosError(0x000B, f"no answer from taosAdapter in {wait:g} s", self.where) from None
        except Exception as e:
            raise TaosError(0x000B, f"WebSocket connection lost: {e}", self.where) from None

    def _call(self, action: str, args: dict[str, Any], wait: float | None = None) -> dict[str, Any]:
        req_id = next(self._ids)
        self._send(json.dumps({"action": action, "args": {"req_id": req_id, **args}}))
        msg = self._recv(wait or self.timeout)
        if isinstance(msg, bytes):
            raise TaosError(0xFFFF, f"expected a text reply to {action}, got {len(msg)} binary bytes", self.where)
        reply = json.loads(msg)
        if reply.get("code", 0) != 0:
            raise TaosError(reply["code"], f"{reply.get('message', '')} ({action})", self.where)
        return reply

    def poll(self, timeout: float) -> Message | None:
        reply = self._call("poll", {"blocking_time": int(timeout * 1000)}, self.timeout + timeout)
        if not reply.get("have_message"):
            return None
        mid = reply["message_id"]
        msg = Message(_KINDS.get(reply["message_type"], str(reply["message_type"])), reply["topic"],
                      reply["database"], reply["vgroup_id"], reply["offset"], handle=(mid, -1))
        if msg.offset >= 0:  # the offset shown is where the message starts; commit where it ends
            pos = self._call("position", {"topic_vgroup_ids": [{"topic": msg.topic, "vgroup_id": msg.vgroup}]})
            msg.handle = (mid, (pos.get("position") or [-1])[0])
        self._last = mid
        req_id = next(self._ids)
        self._send(json.dumps({"action": "fetch_raw", "args": {"req_id": req_id, "message_id": mid}}))
        frame = self._recv(self.timeout)
        if isinstance(frame, str):
            reply = json.loads(frame)
            raise TaosError(reply.get("code", 0xFFFF), f"{reply.get('message', frame)} (fetch_raw)", self.where)
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
        self._stack.close()
