"""The native TMQ consumer: libtaos's ``tmq_*`` API through ctypes, beside the native connection."""

from __future__ import annotations

import ctypes
import json
from typing import Any

from ..errors import TaosError
from .consumer import KINDS, Assignment, Consumer, Message
from .native import TmqRaw as _Raw
from .native import keeping_umask, load_library


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
        msg = Message(KINDS.get(kind, str(kind)), (self.lib.tmq_get_topic_name(res) or b"").decode(),
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
