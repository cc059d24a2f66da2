"""OpenTSDB as a source (``opentsdb+http://host:4242/?metrics=a,b&beginTime=...``).

Each metric (``metrics``, or all of them from ``/api/suggest``) is a partition read in ``readWindow``
windows through ``/api/query`` with the ``none`` aggregator (every series as stored) and millisecond
timestamps; a window's end is the resume position, and without ``endTime`` it keeps polling.
Metric -> super table (ms), tags -> VARCHAR tags (learned as series appear), value -> DOUBLE; one
child table per series, named by a stable hash of ``metric,tag=v...`` or by ``tbname={tag}...``.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import polars as pl

from ...capabilities import SourceCapabilities
from ...dsn import Dsn
from ...errors import SourceError
from ...model import Catalog, Column, SuperTable, TableBatch
from ...options import Options
from ...params import DATABASE, TIME_RANGE, Param, Spec
from ...quality import Rejects
from ...source import Source, ending_at
from ...types import TDType
from ..common.http import open_json_api
from ..common.series import TimeRange, child_name, series_batch, series_key, stable_name

SUGGEST_MAX = 100_000
FIELDS = [("value", TDType("DOUBLE"))]


class OpenTSDBSource(Source):
    capabilities = SourceCapabilities(partitions="windows")  # metrics; on a cluster spans of them
    protocols = ("http", "https")
    spec = Spec(Param("metrics", "list", help="metrics to read (default all, from /api/suggest)"), *TIME_RANGE,
                Param("request_timeout", "duration", 60.0, "HTTP request timeout"), DATABASE)

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        self.where = dsn.masked()
        cfg = self.config
        self.metrics = list(cfg["metrics"])
        self.range = TimeRange(cfg, self.where)
        self.tbname = cfg["tbname"]
        self.database = cfg["database"]
        self.timeout = cfg["request_timeout"]
        scheme = "https" if dsn.protocol == "https" else "http"
        self.base = f"{scheme}://{dsn.host or 'localhost'}:{dsn.port or 4242}"
        self._tags: dict[str, list[str]] = {}  # tag keys per metric, in the order first seen
        self._lock = threading.Lock()

    def _call(self, path: str, body: Any = None, what: str = "") -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base}{path}", data=data,
                                     headers={"Content-Type": "application/json"} if data else {})
        resp = open_json_api(req, server="OpenTSDB", base=self.base, what=what or path, where=self.where,
                             timeout=self.timeout, message=lambda doc: doc["error"]["message"])
        try:
            with resp:
                return json.loads(resp.read())
        except ValueError as e:
            raise SourceError(f"{self.where}: OpenTSDB answered {what or path} with bad JSON: {e}") from None

    def partitions(self) -> list[str]:
        return self.range.partitions(self._metrics(), False)

    def spread_partitions(self) -> list[str]:
        return self.range.partitions(self._metrics(), True)

    def _metrics(self) -> list[str]:
        if not self.metrics:
            q = urllib.parse.urlencode({"type": "metrics", "q": "", "max": SUGGEST_MAX})
            found = self._call(f"/api/suggest?{q}", what="the metric list")
            if len(found) >= SUGGEST_MAX:
                raise SourceError(f"{self.where}: OpenTSDB has {SUGGEST_MAX} or more metrics; name the ones"
                                  f" to read in metrics=")
            if not found:
                raise SourceError(f"{self.where}: OpenTSDB has no metrics")
            self.metrics = list(found)
        return self.metrics

    def catalog(self) -> Catalog:
        cat = Catalog()
        for m in self._metrics():  # tags are added as series with them appear
            cat.add_stable(SuperTable(self.database, stable_name(m), (Column("ts", TDType("TIMESTAMP")),
                                                          Column("value", TDType("DOUBLE"))), (), "ms"))
        return cat

    def read(self, partition: str, start: Any = None) -> Iterator[TableBatch]:
        m, span = self.range.span_of(partition)
        for lo, hi in self.range.windows(start, span):
            body = {"start": lo // 1_000_000, "end": hi // 1_000_000 - 1, "msResolution": True,
                    "queries": [{"aggregator": "none", "metric": m}]}
            found = self._call("/api/query", body, what=f"metric {m!r}")
            batches = (self._batch(m, s.get("tags") or {}, s["dps"], partition) for s in found if s.get("dps"))
            yield from ending_at(batches, partition, hi, self.range.saw_data)

    def _batch(self, m: str, tagvals: dict[str, str], dps: dict[str, Any], partition: str) -> TableBatch:
        with self._lock:
            tags = self._tags.setdefault(m, [])
            tags.extend(sorted(k for k in tagvals if k not in tags))
            tags = list(tags)
        if not isinstance(dps, dict):
            raise SourceError(f"{self.where}: OpenTSDB answered metric {m!r} with dps that are not an object")
        ts, values = pl.Series(list(dps.keys())), pl.Series(list(dps.values()), dtype=pl.Float64, strict=False)
        data = pl.DataFrame({"ts": ts.cast(pl.Int64).cast(pl.Datetime("ms")), "value": values}).sort("ts")
        full = {t: tagvals.get(t) for t in tags}
        name = child_name(series_key(m, full), full, self.tbname, self.where)
        return series_batch(stable_name(m), self.database, FIELDS, tags, full, data, name, "ms", partition)
