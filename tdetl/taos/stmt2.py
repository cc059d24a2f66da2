"""Many small tables in one call: ``taos_stmt2`` binds (native client) of several child tables of one
super table at once, the values pointed at in Arrow buffers (no per-row Python). A raw-block write
is one round trip per table; restoring 10,000 tables of 100 rows spent most of its time waiting on
those. Columnar bind layout: TDengine's ``include/client/taos.h`` (TAOS_STMT2_BIND, TAOS_STMT2_BINDV).

Only what binds exactly goes this way (numbers, BOOL, TIMESTAMP, VARCHAR, NCHAR as UTF-8, VARBINARY,
GEOMETRY as WKB); a value wider than its column, DECIMAL or BLOB leaves the caller to raw blocks,
which name the column and row of a bad value.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import TaosError
from ..model import Column
from .ddl import ident
from .native import NativeConnection

_VAR = {"VARCHAR", "NCHAR", "VARBINARY", "GEOMETRY"}
_FIXED = {"BOOL", "TINYINT", "SMALLINT", "INT", "BIGINT", "TINYINT UNSIGNED", "SMALLINT UNSIGNED",
          "INT UNSIGNED", "BIGINT UNSIGNED", "FLOAT", "DOUBLE", "TIMESTAMP"}


class Stmt2Bind(ctypes.Structure):
    _fields_ = [("buffer_type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("length", ctypes.c_void_p),
                ("is_null", ctypes.c_void_p), ("num", ctypes.c_int)]


class Stmt2BindV(ctypes.Structure):
    _fields_ = [("count", ctypes.c_int), ("tbnames", ctypes.POINTER(ctypes.c_char_p)),
                ("tags", ctypes.c_void_p), ("bind_cols", ctypes.POINTER(ctypes.POINTER(Stmt2Bind)))]


class Stmt2Option(ctypes.Structure):
    _fields_ = [("reqid", ctypes.c_int64), ("singleStbInsert", ctypes.c_bool),
                ("singleTableBindOnce", ctypes.c_bool), ("asyncExecFn", ctypes.c_void_p),
                ("userdata", ctypes.c_void_p)]


def bindable(columns: Sequence[Column]) -> bool:
    return all(c.type.name in _FIXED or c.type.name in _VAR for c in columns)


def _declare(lib: ctypes.CDLL) -> None:
    vp, i32 = ctypes.c_void_p, ctypes.c_int
    for name, restype, argtypes in (
            ("taos_stmt2_init", vp, [vp, ctypes.POINTER(Stmt2Option)]),
            ("taos_stmt2_prepare", i32, [vp, ctypes.c_char_p, ctypes.c_ulong]),
            ("taos_stmt2_bind_param", i32, [vp, ctypes.POINTER(Stmt2BindV), ctypes.c_int32]),
            ("taos_stmt2_exec", i32, [vp, ctypes.POINTER(i32)]),
            ("taos_stmt2_close", i32, [vp]),
            ("taos_stmt2_error", ctypes.c_char_p, [vp])):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes


class Stmt2Writer:
    """One prepared ``INSERT INTO ? (columns) VALUES (?, ...)`` on one connection, for tables that
    exist (their tags are set): bound and executed once per call of :meth:`write`."""

    def __init__(self, conn: NativeConnection, columns: Sequence[Column]) -> None:
        self.conn, self.lib, self.where = conn, conn.lib, conn.where
        _declare(self.lib)
        self.columns = tuple(columns)
        self.stmt = self.lib.taos_stmt2_init(conn.conn, ctypes.byref(Stmt2Option(0, False, False, None, None)))
        if not self.stmt:
            raise TaosError(self.lib.taos_errno(None), conn._errstr(None), self.where)
        names = ", ".join(ident(c.name) for c in self.columns)
        sql = f"INSERT INTO ? ({names}) VALUES ({', '.join('?' * len(self.columns))})".encode()
        self._check(self.lib.taos_stmt2_prepare(self.stmt, sql, len(sql)))

    def _check(self, code: int) -> None:
        if code:
            msg = self.lib.taos_stmt2_error(self.stmt)
            raise TaosError(code, msg.decode(errors="replace") if msg else self.conn._code_text(code), self.where)

    def fits(self, data: pa.RecordBatch) -> bool:
        """Whether every value fits its declared width (else raw blocks say which does not)."""
        for arr, col in zip(data.columns, self.columns):
            if col.type.name in _VAR and col.type.length:
                longest = pc.max(pc.utf8_length(arr) if col.type.name == "NCHAR" else pc.binary_length(arr)).as_py()
                if longest is not None and longest > col.type.length:
                    return False
        return True

    def write(self, names: Sequence[str], rows: Sequence[int], data: pa.RecordBatch, precision: str) -> int:
        """Several tables in one bind and exec: ``data`` holds their rows one table after another
        (``rows`` each, columns in the writer's order). Returns the rows the server took."""
        starts, at = [], 0
        for n in rows:
            starts.append(at)
            at += n
        keep: list[object] = [data]  # every buffer pointed at lives until the call returns
        per_col: list[tuple[int, int, int, int, int, int]] = []  # type, value addr, width, length addr, null addr, off
        for arr, col in zip(data.columns, self.columns):
            per_col.append(self._column(arr, col, precision, keep))
        binds = (ctypes.POINTER(Stmt2Bind) * len(names))()
        ncols = len(self.columns)
        for i, start in enumerate(starts):
            row = (Stmt2Bind * ncols)()
            for j, (tid, values, width, lengths, nulls, offsets) in enumerate(per_col):
                b = row[j]
                b.buffer_type, b.num = tid, rows[i]
                if lengths:  # variable width: the values of rows start.. are contiguous from their first offset
                    first = ctypes.c_int32.from_address(offsets + 4 * start).value
                    b.buffer, b.length = values + first, lengths + 4 * start
                else:
                    b.buffer = values + width * start
                b.is_null = nulls + start if nulls else None
            keep.append(row)
            binds[i] = ctypes.cast(row, ctypes.POINTER(Stmt2Bind))
        tbnames = (ctypes.c_char_p * len(names))(*(n.encode() for n in names))
        bindv = Stmt2BindV(len(names), tbnames, None, binds)
        self._check(self.lib.taos_stmt2_bind_param(self.stmt, ctypes.byref(bindv), -1))
        affected = ctypes.c_int(0)
        self._check(self.lib.taos_stmt2_exec(self.stmt, ctypes.byref(affected)))
        return affected.value

    @staticmethod
    def _column(arr: pa.Array, col: Column, precision: str, keep: list[object]) -> tuple[int, int, int, int, int, int]:
        name = col.type.name
        if name == "TIMESTAMP":
            arr = arr.cast(pa.timestamp(precision)).cast(pa.int64())
        elif name == "BOOL":
            arr = arr.cast(pa.int8())
        else:
            arr = arr.cast(col.type.arrow(precision))
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        nulls = 0
        if arr.null_count:
            flags = pc.is_null(arr).cast(pa.int8())
            keep.append(flags)
            nulls = flags.buffers()[1].address + flags.offset
        keep.append(arr)
        if name in _VAR:
            if arr.type in (pa.large_string(), pa.large_binary()):
                arr = arr.cast(pa.string() if arr.type == pa.large_string() else pa.binary())
                keep.append(arr)
            lengths = pc.fill_null(pc.binary_length(arr), 0).cast(pa.int32())
            keep.append(lengths)
            buffers = arr.buffers()
            values = buffers[2].address if buffers[2] is not None else 0
            offsets = buffers[1].address + 4 * arr.offset
            return col.type.type_id, values, 0, lengths.buffers()[1].address + 4 * lengths.offset, nulls, offsets
        width = col.type.fixed_width or 1
        return col.type.type_id, arr.buffers()[1].address + width * arr.offset, width, 0, nulls, 0

    def close(self) -> None:
        if self.stmt:
            self.lib.taos_stmt2_close(self.stmt)
            self.stmt = None
