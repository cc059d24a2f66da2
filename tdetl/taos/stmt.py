"""Parameter-binding writes for ``force-stmt`` (taosX's "keep using STMT"): taos-ws-py's
statement over WebSocket, taospy's over the native library. Slower than raw blocks (values pass
through Python lists), kept for servers or tables where raw-block writes are not wanted."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import pyarrow as pa

from ..dsn import Dsn
from ..errors import DsnError, TaosError
from ..model import Column
from .ddl import ident

_WS_COLUMN = {
    "BOOL": "bools_to_column", "TINYINT": "tiny_ints_to_column", "SMALLINT": "small_ints_to_column",
    "INT": "ints_to_column", "BIGINT": "big_ints_to_column", "TINYINT UNSIGNED": "unsigned_tiny_ints_to_column",
    "SMALLINT UNSIGNED": "unsigned_small_ints_to_column", "INT UNSIGNED": "unsigned_ints_to_column",
    "BIGINT UNSIGNED": "unsigned_big_ints_to_column", "FLOAT": "floats_to_column", "DOUBLE": "doubles_to_column",
    "VARCHAR": "varchar_to_column", "NCHAR": "nchar_to_column", "JSON": "json_to_column",
    "VARBINARY": "varbinary_to_column", "GEOMETRY": "geometry_to_column", "BLOB": "blob_to_column",
}
_WS_TS = {"ms": "millis_timestamps_to_column", "us": "micros_timestamps_to_column", "ns": "nanos_timestamps_to_column"}
_NATIVE = {
    "BOOL": "bool", "TINYINT": "tinyint", "SMALLINT": "smallint", "INT": "int", "BIGINT": "bigint",
    "TINYINT UNSIGNED": "tinyint_unsigned", "SMALLINT UNSIGNED": "smallint_unsigned", "INT UNSIGNED": "int_unsigned",
    "BIGINT UNSIGNED": "bigint_unsigned", "FLOAT": "float", "DOUBLE": "double", "VARCHAR": "binary",
    "NCHAR": "nchar", "JSON": "json", "VARBINARY": "varbinary", "GEOMETRY": "geometry",
}


MAX_ROWS = 32767  # stmt (v1) binds at most this many rows at once: its row count is an int16


def _values(arr: pa.Array, col: Column, precision: str) -> list[Any]:
    if col.type.name == "TIMESTAMP":
        return arr.cast(pa.timestamp(precision)).cast(pa.int64()).to_pylist()
    return arr.to_pylist()


class StmtWriter:
    """Writes a batch into an existing table with ``INSERT INTO ? (cols) VALUES (?, ...)``."""

    def __init__(self, dsn: Dsn, db: str, user: str, password: str, where: str) -> None:
        self.where = where
        self.ws = dsn.protocol in ("ws", "wss")
        try:
            if self.ws:
                import taosws

                self.mod = taosws
                url = (f"{dsn.protocol}://{quote(user, safe='')}:{quote(password, safe='')}"
                       f"@{dsn.host or 'localhost'}:{dsn.port or 6041}/{quote(db, safe='')}")
                self.conn = taosws.connect(url)
            else:
                import taos

                self.mod = taos
                self.conn = taos.connect(host=dsn.host or "localhost", user=user, password=password,
                                         port=dsn.port or 6030, database=db)
        except ImportError as e:
            raise DsnError(f"{where}: force-stmt needs {e.name}; install tdetl[taos]") from None
        except Exception as e:  # the connectors raise their own error types
            text = str(e).replace(password, "***") if password else str(e)
            raise TaosError(0x000B, f"force-stmt connection failed: {text}", where) from None

    def write(self, table: str, columns: Sequence[Column], data: pa.RecordBatch, precision: str) -> None:
        names = ", ".join(ident(c.name) for c in columns)
        sql = f"INSERT INTO ? ({names}) VALUES ({', '.join('?' * len(columns))})"
        try:
            if self.ws:
                stmt = self.conn.statement()
                stmt.prepare(sql)
                stmt.set_tbname(table)
                binds = []
                for arr, col in zip(data.columns, columns):
                    fn: Callable[[list[Any]], Any] = getattr(
                        self.mod, _WS_TS[precision] if col.type.name == "TIMESTAMP" else _WS_COLUMN[col.type.name])
                    binds.append(fn(_values(arr, col, precision)))
                stmt.bind_param(binds)
                stmt.add_batch()
                stmt.execute()
            else:
                stmt = self.conn.statement(sql)
                stmt.set_tbname(table)
                params = self.mod.new_multi_binds(len(columns))
                for i, (arr, col) in enumerate(zip(data.columns, columns)):
                    if col.type.name == "TIMESTAMP":
                        params[i].timestamp(_values(arr, col, precision),
                                            {"ms": 0, "us": 1, "ns": 2}[precision])
                    else:
                        getattr(params[i], _NATIVE[col.type.name])(_values(arr, col, precision))
                stmt.bind_param_batch(params)
                stmt.execute()
            stmt.close()
        except KeyError as e:
            raise TaosError(0xFFFF, f"force-stmt cannot bind type {e.args[0]}", self.where) from None
        except Exception as e:  # connector errors carry the server's message
            raise TaosError(getattr(e, "errno", 0xFFFF) or 0xFFFF, str(e), self.where) from None

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # closing is best effort
            pass
