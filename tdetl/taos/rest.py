"""taosAdapter's (3.x) and taosd's built-in (2.x) REST endpoint: ``POST /rest/sql[/<db>]`` with
the SQL as body and Basic auth (or ``?token=``). Replies are JSON: 3.x gives
``{"code":0,"column_meta":[[name,"TYPE",len],...],"data":[[...]],"rows":n}`` with RFC3339
timestamps; 2.x gives ``{"status":"succ","head":[...],"column_meta":[[name,type_id,len]],...}``
and, on ``/rest/sqlutc``, timestamps with a zone. The slow but universal transport: there are no raw
blocks, so results are built column-wise from JSON and writes are ``INSERT`` text."""

from __future__ import annotations

import base64
import decimal
import http.client
import json
import re
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import pyarrow as pa

from ..errors import TaosError
from ..model import Column
from ..types import parse_type, type_from_id
from .conn import Connection, Result

_UPDATE_HEADS = (["affected_rows"],)
_USE = re.compile(r"\s*USE\s+(?:`([^`]+)`|(\w+))\s*;?\s*", re.IGNORECASE)


class RestConnection(Connection):
    raw_writes = False

    def __init__(self, scheme: str, host: str | None, port: int | None, user: str, password: str,
                 db: str | None = None, token: str | None = None, timeout: float = 30.0, where: str = "") -> None:
        self.where = where or f"taos+{scheme}://{host}:{port}"
        self.host, self.port = host or "localhost", port or 6041
        self.scheme = scheme
        self.timeout = timeout
        self.db = db
        self.token = token
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._http: http.client.HTTPConnection | None = None
        self.v2 = False
        reply = self._post("/rest/sql", "SELECT SERVER_VERSION()")
        self.v2 = "status" in reply
        rows = reply.get("data") or [[""]]
        self.server_version = str(rows[0][0])

    def _connect(self) -> http.client.HTTPConnection:
        if self._http is None:
            if self.scheme == "https":
                self._http = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                         context=ssl.create_default_context())
            else:
                self._http = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._http

    def _post(self, path: str, sql: str) -> dict[str, Any]:
        if self.db:
            path += "/" + quote(self.db, safe="")
        if self.token:
            path += "?token=" + quote(self.token, safe="")
        body = sql.encode()
        headers = {"Authorization": self.auth, "Content-Type": "text/plain; charset=utf-8"}
        for attempt in (1, 2):  # a kept-alive connection the server closed is retried once
            try:
                conn = self._connect()
                conn.request("POST", path, body, headers)
                resp = conn.getresponse()
                payload = resp.read()
                status = resp.status
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self.close()
                if attempt == 2:
                    raise TaosError(0x000B, f"REST connection lost: {e}", self.where) from None
            except OSError as e:
                self.close()
                raise TaosError(0x000B, f"Unable to establish connection: {e}", self.where) from None
        if status == 200 and not payload:
            raise TaosError(0xFFFF, "taosAdapter sent an empty reply: it does so when a result holds NaN or"
                            " infinity, which JSON cannot carry; read it over taos:// or taos+ws://", self.where)
        try:
            reply = json.loads(payload)
        except ValueError:
            text = payload[:200].decode(errors="replace")
            raise TaosError(0xFFFF, f"HTTP {status}: not a TDengine REST reply: {text!r}", self.where) from None
        code = reply.get("code", 0)
        if reply.get("status") == "error" or code:
            raise TaosError(int(code or 0xFFFF), str(reply.get("desc", reply)), self.where)
        if status >= 400:
            raise TaosError(0xFFFF, f"HTTP {status}", self.where)
        return reply

    def query(self, sql: str) -> Result:
        reply = self._post("/rest/sqlutc" if self.v2 else "/rest/sql", sql)
        use = _USE.fullmatch(sql)
        if use:  # HTTP is stateless: later requests name the database in their path
            self.db = use.group(1) or use.group(2)
        meta = reply.get("column_meta") or []
        head = [m[0] for m in meta]
        if not meta or head in _UPDATE_HEADS:
            data = reply.get("data") or [[0]]
            return Result(is_update=True, affected_rows=int(data[0][0] or 0) if data and data[0] else 0)
        fields = [_field(m) for m in meta]
        precision = _precision(reply, meta)
        batch = _to_arrow(reply.get("data") or [], fields, precision, self.v2)
        return Result(fields, precision, False, 0, _batches=iter([batch]) if batch.num_rows else iter(()))

    def write_block(self, table: str, block: bytes | memoryview, fields: Sequence[Column] | None) -> None:
        raise TaosError(0xFFFF, "raw-block writes are not available over REST; INSERT text is used", self.where)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


def _field(meta: list[Any]) -> Column:
    name, kind, length = meta[0], meta[1], int(meta[2])
    if isinstance(kind, int):  # 2.x: type ids (8 BINARY, 10 NCHAR carry a length)
        return Column(name, type_from_id(kind, length))
    text = str(kind)
    if "(" not in text and text.upper() in ("VARCHAR", "BINARY", "NCHAR", "VARBINARY", "GEOMETRY"):
        text = f"{text}({length})"
    return Column(name, parse_type(text, f"REST column {name!r}"))


def _precision(reply: dict[str, Any], meta: list[Any]) -> str:
    """The result's precision from the fraction digits of its first timestamp (3 ms, 6 us, 9 ns):
    neither REST flavour states it."""
    for i, m in enumerate(meta):
        if str(m[1]).upper() in ("TIMESTAMP", "9"):
            for row in reply.get("data") or []:
                v = row[i]
                if isinstance(v, str):
                    frac = re.match(r"[^.]*\.(\d+)", v)
                    return {9: "ns", 6: "us"}.get(len(frac.group(1)) if frac else 3, "ms")
            break
    return "ms"


def _to_arrow(rows: list[list[Any]], fields: list[Column], precision: str, v2: bool) -> pa.RecordBatch:
    cols = list(zip(*rows)) if rows else [() for _ in fields]
    arrays = []
    for f, values in zip(fields, cols):
        t = f.type
        at = t.arrow(precision)
        if t.name == "TIMESTAMP":
            if values and isinstance(next((v for v in values if v is not None), 0), str):
                arr = pa.array(values, pa.string()).cast(pa.timestamp("ns", tz="UTC")).cast(pa.timestamp("ns"))
                arrays.append(arr.cast(at))
                continue
            arrays.append(pa.array(values, pa.int64()).cast(at))
        elif t.name in ("VARBINARY", "GEOMETRY", "BLOB"):
            arrays.append(pa.array([_bytes(v) for v in values], at))
        elif t.name == "JSON":
            arrays.append(pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values], at))
        elif t.name == "DECIMAL":
            arrays.append(pa.array([None if v is None else decimal.Decimal(str(v)) for v in values], at))
        elif t.name == "BOOL":
            arrays.append(pa.array([None if v is None else bool(v) for v in values], at))
        else:
            arrays.append(pa.array(list(values), at))
    return pa.RecordBatch.from_arrays(arrays, names=[f.name for f in fields])


def _bytes(v: Any) -> bytes | None:
    if v is None or isinstance(v, bytes):
        return v
    s = str(v)
    if s.startswith("\\x"):
        s = s[2:]
    try:
        return bytes.fromhex(s)
    except ValueError:
        return s.encode()
