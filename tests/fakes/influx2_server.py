"""An in-test InfluxDB 2.x query endpoint (``POST /api/v2/query``) over an in-memory bucket.

No 2.x server installs here, so this follows InfluxDB 2's documented behaviour for the Flux shapes
tdetl sends — ``schema.measurements``, ``range |> filter(_measurement) |> first()`` and
``range |> filter |> pivot(rowKey: ["_time"], columnKey: ["_field"])`` — computed from the points,
with the range's start inclusive and stop exclusive. Replies are annotated CSV as InfluxDB writes it
(``#datatype``/``#group``/``#default`` rows, ``\\r\\n`` line ends, a blank line and new annotations
when the schema changes, RFC3339Nano times) streamed with chunked transfer encoding. Token auth and
org are checked; any other query gets the server's ``invalid`` error, so unexpected Flux fails.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any

from .http import Loopback, Served, send_json


class U(int):
    """An InfluxDB unsigned integer field value."""


@dataclass(frozen=True)
class Point:
    measurement: str
    tags: tuple[tuple[str, str], ...]
    field: str
    value: Any
    ts: int  # ns


def datatype(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, U):
        return "unsignedLong"
    if isinstance(v, int):
        return "long"
    if isinstance(v, float):
        return "double"
    return "string"


def rfc3339nano(ns: int) -> str:
    s, frac = divmod(ns, 10**9)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))
    return base + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


def parse_time(text: str) -> int:
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z", text)
    if not m:
        raise FluxError(f"invalid time literal {text!r}")
    dt = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * 10**9 + int((m.group(2) or "0").ljust(9, "0"))


class FluxError(Exception):
    pass


_STR = r'"((?:[^"\\]|\\.)*)"'
_TIME = r"(\d{4}-[0-9T:.\-]+Z)"
_MEASUREMENTS = re.compile(rf'import "influxdata/influxdb/schema"\s*schema\.measurements\(bucket: {_STR},'
                           rf" start: {_TIME}, stop: {_TIME}\)")
_FROM = re.compile(rf"from\(bucket: {_STR}\) \|> range\(start: {_TIME}, stop: {_TIME}\)"
                   rf" \|> filter\(fn: \(r\) => r\._measurement == {_STR}\)"
                   r'( \|> first\(\)'
                   r'| \|> pivot\(rowKey: \["_time"\], columnKey: \["_field"\], valueColumn: "_value"\))')


def unquote(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


class Bucket:
    def __init__(self) -> None:
        self.points: list[Point] = []
        self.lock = threading.Lock()

    def write(self, measurement: str, tags: dict[str, str], fields: dict[str, Any], ts: int) -> None:
        with self.lock:
            key = tuple(sorted(tags.items()))
            for f, v in fields.items():
                self.points.append(Point(measurement, key, f, v, ts))


class Influx2Server(Served):
    """``with Influx2Server(org, token) as s: s.bucket('b').write(...)``; ``s.port``; ``s.queries``."""

    def __init__(self, org: str = "3233855dc7e37d8d", token: str = "tok==") -> None:
        self.org, self.token = org, token
        self.buckets: dict[str, Bucket] = {}
        self.queries: list[str] = []
        self.fail_after_first_table = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                server.handle(self)

        self.server = Loopback(Handler)
        self.port = self.server.port

    def bucket(self, name: str) -> Bucket:
        return self.buckets.setdefault(name, Bucket())

    # -- HTTP --------------------------------------------------------------------------------------

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        path, _, qs = h.path.partition("?")
        args = dict(p.split("=", 1) for p in qs.split("&") if "=" in p)
        if path != "/api/v2/query":
            return self._error(h, 404, "not found", "path not found")
        if h.headers.get("Authorization") != f"Token {self.token}":
            return self._error(h, 401, "unauthorized", "unauthorized access")
        org = args.get("orgID") or args.get("org")
        if org != self.org:
            return self._error(h, 404, "not found", f'organization name "{org}" not found')
        doc = json.loads(body)
        if doc.get("dialect", {}).get("annotations") != ["datatype", "group", "default"]:
            return self._error(h, 400, "invalid", "tdetl must ask for datatype, group and default annotations")
        query = doc["query"]
        self.queries.append(query)
        try:
            blocks = list(self.run(query))
        except FluxError as e:
            return self._error(h, 400, "invalid", str(e))
        except LookupError as e:
            return self._error(h, 404, "not found", f"failed to initialize execute state: {e.args[0]}")
        h.send_response(200)
        h.send_header("Content-Type", "text/csv; charset=utf-8")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for i, block in enumerate(blocks):
            if i and self.fail_after_first_table:
                block = annotated([("error", "string", True), ("reference", "string", True)],
                                  [["panic: runtime error: stream interrupted", ""]], None, default="")
            data = block.encode()
            for at in range(0, len(data), 997):  # odd chunk sizes split rows and quotes
                part = data[at:at + 997]
                h.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            if i and self.fail_after_first_table:
                break
        h.wfile.write(b"0\r\n\r\n")

    def _error(self, h: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        send_json(h, status, {"code": code, "message": message}, "application/json; charset=utf-8",
                  {"X-Platform-Error-Code": code})

    # -- Flux --------------------------------------------------------------------------------------

    def _points(self, bucket: str) -> list[Point]:
        if bucket not in self.buckets:
            raise LookupError(f'could not find bucket "{bucket}"')
        with self.buckets[bucket].lock:
            return list(self.buckets[bucket].points)

    def run(self, query: str) -> Iterator[str]:
        m = _MEASUREMENTS.fullmatch(query.strip())
        if m:
            lo, hi = parse_time(m.group(2)), parse_time(m.group(3))
            names = sorted({p.measurement for p in self._points(unquote(m.group(1))) if lo <= p.ts < hi})
            if names:
                yield annotated([("_value", "string", False)], [[n] for n in names], {})
            return
        m = _FROM.fullmatch(query.strip())
        if not m:
            raise FluxError(f"compilation failed: tdetl's test server does not know the query {query!r}")
        lo, hi = parse_time(m.group(2)), parse_time(m.group(3))
        meas = unquote(m.group(4))
        pts = sorted((p for p in self._points(unquote(m.group(1))) if lo <= p.ts < hi and p.measurement == meas),
                     key=lambda p: (p.tags, p.field, p.ts))
        start, stop = rfc3339nano(lo), rfc3339nano(hi)
        if m.group(5).strip() == "|> first()":
            yield from self._first(pts, start, stop, meas)
        else:
            yield from self._pivot(pts, start, stop, meas)

    def _first(self, pts: list[Point], start: str, stop: str, meas: str) -> Iterator[str]:
        tables: dict[tuple[Any, ...], Point] = {}
        for p in pts:
            tables.setdefault((p.tags, p.field), p)
        numbering: dict[Any, int] = {}
        schemas: dict[tuple[Any, ...], list[list[Any]]] = {}
        for p in tables.values():
            key = (tuple(k for k, _ in p.tags), datatype(p.value))
            schemas.setdefault(key, []).append(
                [start, stop, rfc3339nano(p.ts), p.value, p.field, meas, *(v for _, v in p.tags)])
        for (tagkeys, dt), rows in schemas.items():
            cols = [("_start", "dateTime:RFC3339", True), ("_stop", "dateTime:RFC3339", True),
                    ("_time", "dateTime:RFC3339", False), ("_value", dt, False), ("_field", "string", True),
                    ("_measurement", "string", True), *((k, "string", True) for k in tagkeys)]
            yield annotated(cols, rows, numbering, group_of=lambda r, k=tagkeys: (r[4], *k, *r[6:]))

    def _pivot(self, pts: list[Point], start: str, stop: str, meas: str) -> Iterator[str]:
        series: dict[tuple[tuple[str, str], ...], dict[int, dict[str, Any]]] = {}
        kinds: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        for p in pts:
            series.setdefault(p.tags, {}).setdefault(p.ts, {})[p.field] = p.value
            seen = kinds.setdefault(p.tags, {})
            if seen.setdefault(p.field, datatype(p.value)) != datatype(p.value):
                raise FluxError(f"schema collision: cannot pivot field {p.field!r} of mixed types")
        schemas: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        numbering: dict[Any, int] = {}
        for tags, rows in series.items():
            fields = tuple(sorted(kinds[tags].items()))
            schemas.setdefault((tuple(k for k, _ in tags), fields), []).append((tags, rows))
        for (tagkeys, fields), members in schemas.items():
            cols = [("_start", "dateTime:RFC3339", True), ("_stop", "dateTime:RFC3339", True),
                    ("_time", "dateTime:RFC3339", False), ("_measurement", "string", True),
                    *((k, "string", True) for k in tagkeys), *((f, dt, False) for f, dt in fields)]
            out = [[start, stop, rfc3339nano(ts), meas, *(v for _, v in tags), *(vals.get(f) for f, _ in fields)]
                   for tags, rows in members for ts, vals in sorted(rows.items())]
            yield annotated(cols, out, numbering, group_of=lambda r, k=tagkeys: (*k, *r[3:4 + len(k)]))


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return v


def annotated(cols: list[tuple[str, str, bool]], rows: list[list[Any]], numbering: dict[Any, int] | None,
              group_of: Any = None, default: str = "_result") -> str:
    """One annotated CSV table block; the rows of one table (one group key) share a ``table`` number,
    unique across the result. ``numbering=None``: an error block, which has no result/table columns."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    lead = [] if numbering is None else [("result", "string", False), ("table", "long", False)]
    allc = lead + cols
    w.writerow(["#datatype", *(t for _, t, _ in allc)])
    w.writerow(["#group", *("true" if g else "false" for _, _, g in allc)])
    w.writerow(["#default", default, *([""] * (len(allc) - 1))])
    w.writerow(["", *(n for n, _, _ in allc)])
    for r in rows:
        if numbering is None:
            w.writerow(["", *(_cell(v) for v in r)])
            continue
        key = group_of(r) if group_of else 0
        n = numbering.setdefault(key, len(numbering))
        w.writerow(["", "", n, *(_cell(v) for v in r)])
    w.writerow([])
    return out.getvalue()
