"""An in-test OpenTSDB 2.x HTTP API (``/api/put``, ``/api/suggest``, ``/api/query``) over an in-memory dataset.

No OpenTSDB server installs here (see ../shared/spec/services.md §5), so this follows the
documented semantics: ``start``/``end`` absolute times in seconds (up to 10 digits) or milliseconds
(13), both ends inclusive; the ``none`` aggregator returns each series as stored, other aggregators
sum the series per timestamp; ``tags`` match exactly or with ``*``; ``msResolution`` keeps
millisecond keys in ``dps``, otherwise times are seconds; an unknown metric is HTTP 400
``No such name for 'metrics'``; ``/api/suggest`` lists names that start with ``q``, at most ``max``
(default 25), sorted. ``/api/put`` takes one data point object or a list of them (``metric``,
``timestamp`` in seconds or milliseconds, ``value`` a number or numeric text, at least one tag) and
answers 204, or 400 naming the first bad point (the points before it are stored, as OpenTSDB does).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from .http import Loopback, Served, send_json


@dataclass(frozen=True)
class Dp:
    metric: str
    tags: tuple[tuple[str, str], ...]
    ms: int
    value: float | int


class TsdbError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _instant(v: Any, what: str) -> int:
    """OpenTSDB absolute times: integer seconds, or milliseconds when given 13 digits."""
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise TsdbError(400, f"Invalid {what} time: {v!r} (only absolute times in this test server)") from None
    return n if len(str(abs(n))) > 10 else n * 1000


class OpenTSDBServer(Served):
    def __init__(self) -> None:
        self.dps: list[Dp] = []
        self.lock = threading.Lock()
        self.queries: list[dict[str, Any]] = []
        self.fail_at: int | None = None  # the n-th query answers HTTP 500 (a region server went away)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.handle(self, None)

            def do_POST(self) -> None:
                server.handle(self, self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        self.server = Loopback(Handler)
        self.port = self.server.port

    def put(self, metric: str, ms: int, value: float | int, **tags: str) -> None:
        with self.lock:
            self.dps.append(Dp(metric, tuple(sorted(tags.items())), ms, value))

    def handle(self, h: BaseHTTPRequestHandler, body: bytes | None) -> None:
        path, _, qs = h.path.partition("?")
        args = {k: v[-1] for k, v in urllib.parse.parse_qs(qs, keep_blank_values=True).items()}
        try:
            if path == "/api/suggest":
                out: Any = self.suggest(args)
            elif path == "/api/query" and body is not None:
                out = self.query(json.loads(body))
            elif path == "/api/put" and body is not None:
                self.put_points(json.loads(body))
                h.send_response(204)
                h.end_headers()
                return
            else:
                raise TsdbError(404, "Endpoint not found")
            status = 200
        except TsdbError as e:
            status, out = e.code, {"error": {"code": e.code, "message": e.message}}
        except ValueError as e:
            status, out = 400, {"error": {"code": 400, "message": f"Unable to parse the given JSON: {e}"}}
        send_json(h, status, out, "application/json; charset=UTF-8")

    def put_points(self, doc: Any) -> None:
        for dp in doc if isinstance(doc, list) else [doc]:
            tags = dp.get("tags") if isinstance(dp, dict) else None
            if not isinstance(tags, dict) or not tags or not isinstance(dp.get("metric"), str):
                raise TsdbError(400, f"Invalid data point (a metric and at least one tag): {dp!r}"[:200])
            try:
                value = float(dp["value"]) if isinstance(dp["value"], str) else dp["value"]
            except (KeyError, ValueError):
                raise TsdbError(400, f"Unable to parse value: {dp.get('value')!r}") from None
            self.put(dp["metric"], _instant(dp.get("timestamp"), "timestamp"), value,
                     **{str(k): str(v) for k, v in tags.items()})

    def suggest(self, args: dict[str, str]) -> list[str]:
        if args.get("type") not in ("metrics", "tagk", "tagv"):
            raise TsdbError(400, "Invalid 'type' parameter:" + str(args.get("type")))
        q, limit = args.get("q", ""), int(args.get("max") or 25)
        with self.lock:
            if args["type"] == "metrics":
                names = {d.metric for d in self.dps}
            else:
                names = {kv[0 if args["type"] == "tagk" else 1] for d in self.dps for kv in d.tags}
        return sorted(n for n in names if n.startswith(q))[:limit]

    def query(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        self.queries.append(doc)
        if self.fail_at == len(self.queries):
            raise TsdbError(500, "Unexpected exception: region server unavailable")
        if "start" not in doc:
            raise TsdbError(400, "Missing start time")
        lo = _instant(doc["start"], "start")
        hi = _instant(doc["end"], "end") if doc.get("end") is not None else 2**62
        ms_res = bool(doc.get("msResolution") or doc.get("ms"))
        with self.lock:
            dps = list(self.dps)
        out = []
        for q in doc.get("queries") or []:
            metric, agg = q.get("metric"), q.get("aggregator")
            if not any(d.metric == metric for d in dps):
                raise TsdbError(400, f"No such name for 'metrics': '{metric}'")
            if agg not in ("none", "sum"):
                raise TsdbError(400, f"No such aggregator: {agg} (this test server knows none and sum)")
            want = q.get("tags") or {}
            series: dict[tuple[tuple[str, str], ...], dict[int, Any]] = {}
            for d in dps:
                tags = dict(d.tags)
                if d.metric != metric or not lo <= d.ms <= hi:
                    continue
                if any(k not in tags or (v != "*" and tags[k] != v) for k, v in want.items()):
                    continue
                key = d.ms if ms_res else d.ms // 1000
                series.setdefault(d.tags, {})[key] = d.value
            if agg == "none":
                for tags, points in sorted(series.items()):
                    out.append({"metric": metric, "tags": dict(tags), "aggregateTags": [],
                                "dps": {str(k): v for k, v in sorted(points.items())}})
            elif series:
                total: dict[int, Any] = {}
                for points in series.values():
                    for k, v in points.items():
                        total[k] = total.get(k, 0) + v
                common = set.intersection(*(set(t) for t in series)) if series else set()
                out.append({"metric": metric, "tags": dict(sorted(common)),
                            "aggregateTags": sorted({k for t in series for k, _ in t} - {k for k, _ in common}),
                            "dps": {str(k): v for k, v in sorted(total.items())}})
        return out
