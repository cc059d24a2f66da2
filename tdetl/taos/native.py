"""The native transport: TDengine's client library (libtaos) loaded with ctypes when a ``taos://``
DSN is used. Results are read with ``taos_fetch_raw_block`` and decoded straight to Arrow; writes
go through ``taos_write_raw_block_with_fields_with_reqid`` (shared/spec/rawblock.md §4)."""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from ..errors import DsnError, TaosError
from ..memo import ByIdentity
from ..model import Column
from .conn import Connection, Result, refuse_blob
from .fields import PRECISIONS, columns_from_lists

TSDB_OPTION_CONFIGDIR = 3
PROBE_TIMEOUT = 3.0  # seconds a TCP probe of the server's port may take
_CANDIDATES = ("libtaos.so", "/usr/lib/libtaos.so", "/usr/local/lib/libtaos.so",
               "/usr/local/taos/driver/libtaos.so", "/usr/lib/x86_64-linux-gnu/libtaos.so")


class TaosField(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 65), ("type", ctypes.c_int8), ("bytes", ctypes.c_int32)]


class TaosFieldE(ctypes.Structure):
    """TAOS_FIELD_E: what ``taos_fetch_fields_e`` (3.3.6+) adds is DECIMAL's precision and scale,
    which plain ``taos_fetch_fields`` does not carry."""

    _fields_ = [("name", ctypes.c_char * 65), ("type", ctypes.c_int8), ("precision", ctypes.c_uint8),
                ("scale", ctypes.c_uint8), ("bytes", ctypes.c_int32)]


class TmqRaw(ctypes.Structure):
    """tmq_raw_data: a TMQ message as ``tmq_get_raw`` gives and ``tmq_write_raw`` takes it."""

    _fields_ = [("raw", ctypes.c_void_p), ("raw_len", ctypes.c_uint32), ("raw_type", ctypes.c_uint16)]


_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()
_umask_lock = threading.Lock()
_umask_kept: set[str] = set()
T = TypeVar("T")
_reqids = itertools.count(1)


def _declare(lib: ctypes.CDLL) -> None:
    vp, cp, i32, i64 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int64
    sigs = {
        "taos_connect": (vp, [cp, cp, cp, cp, ctypes.c_uint16]),
        "taos_options": (i32, [i32, cp]),
        "taos_query": (vp, [vp, cp]),
        "taos_errno": (i32, [vp]),
        "taos_errstr": (cp, [vp]),
        "taos_fetch_raw_block": (i32, [vp, ctypes.POINTER(i32), ctypes.POINTER(vp)]),
        "taos_num_fields": (i32, [vp]),
        "taos_fetch_fields": (ctypes.POINTER(TaosField), [vp]),
        "taos_result_precision": (i32, [vp]),
        "taos_affected_rows": (i32, [vp]),
        "taos_is_update_query": (ctypes.c_bool, [vp]),
        "taos_free_result": (None, [vp]),
        "taos_close": (None, [vp]),
        "taos_get_server_info": (cp, [vp]),
        "taos_write_raw_block_with_reqid": (i32, [vp, i32, vp, cp, i64]),
        "taos_write_raw_block_with_fields_with_reqid": (i32, [vp, i32, vp, cp, ctypes.POINTER(TaosField), i32, i64]),
        "tmq_write_raw": (i32, [vp, TmqRaw]),
    }
    optional = {"taos_fetch_fields_e": (ctypes.POINTER(TaosFieldE), [vp]),  # absent before 3.3.6
                "tstrerror": (cp, [i32])}
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    for name, (restype, argtypes) in optional.items():
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype, fn.argtypes = restype, argtypes


def load_library(path: str | None = None, config_dir: str | None = None, where: str = "taos://") -> ctypes.CDLL:
    """libtaos, once per process: ``path`` (DSN ``libraryPath``) or the usual places."""
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        tried = [path] if path else [ctypes.util.find_library("taos") or "", *_CANDIDATES]
        for cand in filter(None, tried):
            if path and not Path(cand).exists():
                break
            try:
                lib = ctypes.CDLL(cand)
            except OSError:
                continue
            _declare(lib)
            if config_dir:
                lib.taos_options(TSDB_OPTION_CONFIGDIR, os.fsencode(config_dir))
            _lib = lib
            return lib
        shown = ", ".join(filter(None, tried))
        raise DsnError(f"{where}: the TDengine client library (libtaos.so) was not found (tried {shown});"
                       " install the TDengine client package, pass libraryPath=/path/to/libtaos.so,"
                       " or use taos+ws:// through taosAdapter")


def keeping_umask(kind: str, call: Callable[[], T]) -> T:
    """``call()`` with the process umask as it was: the client library sets it to 0 when it starts
    (its first connection, its first consumer), which would leave every file tdetl creates afterwards
    (backups, state, caches) writable by any local user. Later calls of a kind run unguarded."""
    if kind in _umask_kept:
        return call()
    with _umask_lock:
        mask = os.umask(0o077)
        os.umask(mask)
        try:
            return call()
        finally:
            os.umask(mask)
            _umask_kept.add(kind)


def _refuse_if_closed(host: str, port: int, where: str) -> None:
    """libtaos retries a port nothing listens on for some 20 s before it says so: a refused TCP
    connection says it at once. Anything else (a slow or filtered network) is left to libtaos."""
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT).close()
    except ConnectionRefusedError:
        raise TaosError(0x000B, f"Unable to establish connection: nothing listens on {host}:{port}", where) from None
    except OSError:
        pass


class NativeConnection(Connection):
    def __init__(self, host: str | None, port: int | None, user: str, password: str, db: str | None,
                 library: str | None = None, config_dir: str | None = None, where: str = "taos://") -> None:
        self.lib = load_library(library, config_dir, where)
        self.where = where
        self._field_arrays: ByIdentity[ctypes.Array[TaosField]] = ByIdentity()
        _refuse_if_closed(host or "localhost", port or 6030, where)
        self.conn = keeping_umask("connect", lambda: self.lib.taos_connect(
            (host or "localhost").encode(), user.encode(), password.encode(), db.encode() if db else None,
            port or 6030))
        if not self.conn:
            code = self.lib.taos_errno(None)
            raise TaosError(code, self._errstr(None), where)
        info = self.lib.taos_get_server_info(self.conn)
        self.server_version = info.decode() if info else ""

    def _errstr(self, res: int | None) -> str:
        msg = self.lib.taos_errstr(res)
        return msg.decode(errors="replace") if msg else "unknown error"

    def _code_text(self, code: int) -> str:
        """The message of a call that returns only a code: ``taos_errstr(NULL)`` may already read
        "success" by then, so the code's own text is the fallback."""
        msg = self._errstr(None)
        if msg.lower() in ("success", "unknown error", "") and hasattr(self.lib, "tstrerror"):
            text = self.lib.tstrerror(code)
            msg = text.decode(errors="replace") if text else msg
        return msg

    def query(self, sql: str) -> Result:
        res = self.lib.taos_query(self.conn, sql.encode())
        code = self.lib.taos_errno(res)
        if code:
            msg = self._errstr(res)
            self.lib.taos_free_result(res)
            raise TaosError(code, msg, self.where)
        n = self.lib.taos_num_fields(res)
        if n == 0 or self.lib.taos_is_update_query(res):
            rows = self.lib.taos_affected_rows(res)
            self.lib.taos_free_result(res)
            return Result(is_update=True, affected_rows=rows)
        fields = self._fields(res, n)
        precision = PRECISIONS.get(self.lib.taos_result_precision(res), "ms")
        return Result(fields, precision, False, 0, self._blocks(res))

    def _fields(self, res: int, n: int) -> list[Column]:
        extended = hasattr(self.lib, "taos_fetch_fields_e")  # with DECIMAL precision and scale
        raw = (self.lib.taos_fetch_fields_e if extended else self.lib.taos_fetch_fields)(res)
        fields = [raw[i] for i in range(n)]
        return columns_from_lists([f.name.decode() for f in fields], [f.type for f in fields],
                                  [f.bytes for f in fields], [f.precision for f in fields] if extended else None,
                                  [f.scale for f in fields] if extended else None)

    def _blocks(self, res: int) -> Iterator[memoryview]:
        """Each block views the library's memory: valid until the next one is fetched."""
        rows, data = ctypes.c_int(0), ctypes.c_void_p()
        try:
            while True:
                code = self.lib.taos_fetch_raw_block(res, ctypes.byref(rows), ctypes.byref(data))
                if code:
                    raise TaosError(code, self._errstr(res), self.where)
                if rows.value == 0 or not data.value:
                    return
                length = ctypes.c_int32.from_address(data.value + 4).value
                yield memoryview((ctypes.c_char * length).from_address(data.value)).cast("B")
        finally:
            self.lib.taos_free_result(res)

    def write_block(self, table: str, block: bytes | memoryview, fields: Sequence[Column] | None) -> None:
        refuse_blob(block, fields, self.where)
        mv = memoryview(block)
        buf = (ctypes.c_char * len(mv)).from_buffer(mv) if not mv.readonly else \
            (ctypes.c_char * len(mv)).from_buffer_copy(mv)
        rows = int.from_bytes(bytes(mv[8:12]), "little")
        reqid = next(_reqids)
        if fields is None:
            code = self.lib.taos_write_raw_block_with_reqid(self.conn, rows, buf, table.encode(), reqid)
        else:
            arr = self._fields_array(fields)
            code = self.lib.taos_write_raw_block_with_fields_with_reqid(
                self.conn, rows, buf, table.encode(), arr, len(fields), reqid)
        if code:
            raise TaosError(code, self._code_text(code), self.where)

    def write_raw(self, raw_type: int, data: bytes | memoryview) -> None:
        mv = memoryview(data)
        buf = (ctypes.c_char * len(mv)).from_buffer_copy(mv) if mv.readonly else \
            (ctypes.c_char * len(mv)).from_buffer(mv)
        code = self.lib.tmq_write_raw(self.conn, TmqRaw(ctypes.cast(buf, ctypes.c_void_p), len(mv), raw_type))
        if code:
            raise TaosError(code, self._code_text(code), self.where)

    def _fields_array(self, fields: Sequence[Column]) -> ctypes.Array[TaosField]:
        """The C field array for a table's columns, built once per columns object."""
        arr = self._field_arrays.get(fields)
        if arr is None:
            arr = (TaosField * len(fields))()
            for i, c in enumerate(fields):
                arr[i].name, arr[i].type, arr[i].bytes = c.name.encode(), c.type.type_id, c.type.field_bytes()
            self._field_arrays.put(fields, arr)
        return arr

    def close(self) -> None:
        if self.conn:
            self.lib.taos_close(self.conn)
            self.conn = None
