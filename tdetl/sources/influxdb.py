"""InfluxDB 1.x as a source (``influxdb+http(s)://host:8086/?version=1.x&bucket=db[/rp]&beginTime=...``).

InfluxQL over plain HTTP ``/query`` with ``chunked=true&epoch=ns`` (influxdb-client cannot talk to
1.6: its /api/v2 endpoints appear in 1.8). Each measurement is a partition (``--jobs`` reads several
at once) read in time windows of ``readWindow`` (D, H, M, or a duration such as ``10s``), oldest
first; a window's end is the resume position, so a stopped task goes on after the last finished
window. Without ``endTime`` it keeps polling: a window is read once it has closed.

Measurement -> super table; tag keys -> VARCHAR tags; fields -> columns typed from SHOW FIELD KEYS;
one child table per series (tag set), named ``t_<hash of the series key>`` or by ``tbname={tag}...``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import polars as pl

from ..dsn import Dsn
from ..errors import DsnError, SourceError
from ..model import Catalog, Column, SuperTable, TableBatch, TableSpec, conform
from ..transform.parser import sized
from ..types import TDType
from .base import Source

log = logging.getLogger(__name__)

FIELD_TYPES = {"float": "DOUBLE", "integer": "BIGINT", "unsigned": "BIGINT UNSIGNED", "string": "VARCHAR",
               "boolean": "BOOL"}
_PL = {"DOUBLE": pl.Float64, "BIGINT": pl.Int64, "BIGINT UNSIGNED": pl.UInt64, "VARCHAR": pl.String,
       "BOOL": pl.Boolean}
WINDOWS = {"D": 86_400, "H": 3_600, "M": 60}
NS = 1_000_000_000


def parse_instant(text: str, where: str) -> int:
    """Nanoseconds since the epoch from the seed's ``2023-06-01T00:00:00+0800`` (or ``Z``, ``+08:00``).
    A ``+`` that arrived as a space (unescaped in a URL) is read as ``+``."""
    t = re.sub(r" (\d\d:?\d\d)$", r"+\1", text.strip()).replace("Z", "+00:00")
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise DsnError(f"{where}: {text!r} is not a time like 2023-06-01T00:00:00+0800") from None
    if dt.tzinfo is None:
        raise DsnError(f"{where}: {text!r} needs a zone (Z or +0800)")
    return int(dt.timestamp()) * NS + dt.microsecond * 1000


class InfluxDBSource(Source):
    protocols = ("http", "https")
    params = frozenset({"version", "username", "password", "bucket", "measurements", "beginTime", "endTime",
                        "readWindow", "tbname", "field_conflict", "timeout", "chunk_size", "database",
                        "orgId", "token"})

    def __init__(self, dsn: Dsn, options: Any) -> None:
        super().__init__(dsn, options)
        where = self.where = dsn.masked()
        dsn.check_params(self.params)
        version = dsn.get("version") or ""
        if not version:
            raise DsnError(f"{where}: version is required (1.x or 2.x, e.g. version=1.7)")
        if not version.startswith("1"):
            raise DsnError(f"{where}: version={version!r}: only InfluxDB 1.x is read so far (2.x is not built yet)")
        bucket = dsn.get("bucket") or ""
        if not bucket:
            raise DsnError(f"{where}: bucket is required (the database, optionally db/rp)")
        self.db, _, self.rp = bucket.partition("/")
        self.user = dsn.get("username") or dsn.user
        self.password = dsn.get("password") or dsn.password
        self.measurements = [m for m in (dsn.get("measurements") or "").split(",") if m]
        if not dsn.get("beginTime"):
            raise DsnError(f"{where}: beginTime is required, e.g. beginTime=2023-06-01T00:00:00+0800")
        self.begin = parse_instant(dsn.get("beginTime") or "", f"{where}: beginTime")
        self.end = parse_instant(dsn.get("endTime") or "", f"{where}: endTime") if dsn.get("endTime") else None
        if self.end is not None and self.end <= self.begin:
            raise DsnError(f"{where}: endTime must be after beginTime")
        win = dsn.get("readWindow") or "M"
        if win.upper() in WINDOWS:
            self.window = WINDOWS[win.upper()] * NS
        else:
            self.window = int(dsn.duration("readWindow") * NS)
            if self.window <= 0:
                raise DsnError(f"{where}: readWindow={win!r} must be D, H, M or a duration such as 10s")
        self.tbname = dsn.get("tbname")
        self.conflict = dsn.choice("field_conflict", ("error", "varchar"), "error")
        timeout = dsn.get("timeout") or "never"
        self.idle: float | None = None if timeout == "never" else dsn.duration("timeout")
        self.chunk = dsn.integer("chunk_size", 10_000, minimum=1)
        self.database = dsn.get("database") or None
        scheme = "https" if dsn.protocol == "https" else "http"
        self.base = f"{scheme}://{dsn.host or 'localhost'}:{dsn.port or 8086}"
        self._schema: dict[str, tuple[list[str], list[tuple[str, TDType]]]] = {}
        self._dbs: list[str] | None = None

    # -- HTTP -------------------------------------------------------------------------------------

    def _request(self, q: str, chunked: bool = False) -> Any:
        args = {"db": self.db, "q": q, "epoch": "ns"}
        if self.rp:
            args["rp"] = self.rp
        if self.user:
            args.update(u=self.user, p=self.password or "")
        if chunked:
            args.update(chunked="true", chunk_size=str(self.chunk))
        url = f"{self.base}/query?{urllib.parse.urlencode(args)}"
        try:
            return urllib.request.urlopen(url, timeout=60)
        except urllib.error.HTTPError as e:
            body = e.read().decode("utf-8", "replace")
            try:
                doc = json.loads(body)
                msg = doc.get("error") or doc["results"][0].get("error")
            except (ValueError, KeyError, IndexError, TypeError):
                msg = body.strip()[:200]
            raise SourceError(f"{self.where}: InfluxDB refused {q!r}: HTTP {e.code}: {msg}") from None
        except (urllib.error.URLError, OSError) as e:
            raise SourceError(f"{self.where}: cannot reach InfluxDB at {self.base}: {e}") from None

    def _query(self, q: str) -> list[dict[str, Any]]:
        with self._request(q) as resp:
            doc = json.loads(resp.read())
        res = doc["results"][0]
        if "error" in res:
            raise SourceError(f"{self.where}: InfluxDB: {q!r}: {res['error']}")
        return res.get("series", [])

    def _chunks(self, q: str) -> Iterator[dict[str, Any]]:
        """Series pieces as the server streams them (one JSON document per line)."""
        with self._request(q, chunked=True) as resp:
            for line in resp:
                if not line.strip():
                    continue
                doc = json.loads(line)
                if "error" in doc:
                    raise SourceError(f"{self.where}: InfluxDB: {doc['error']}")
                for res in doc.get("results", []):
                    if "error" in res:
                        raise SourceError(f"{self.where}: InfluxDB: {q!r}: {res['error']}")
                    yield from res.get("series", [])

    # -- schema -----------------------------------------------------------------------------------

    def _measurements(self) -> list[str]:
        if self._dbs is None:
            self._dbs = [v[0] for s in self._query("SHOW DATABASES") for v in s.get("values", [])]
            if self.db not in self._dbs:
                raise SourceError(f"{self.where}: database not found: {self.db}"
                                  f" (the server has: {', '.join(self._dbs) or 'none'})")
        if self.measurements:
            return self.measurements
        return [v[0] for s in self._query("SHOW MEASUREMENTS") for v in s.get("values", [])]

    def _describe(self, m: str) -> tuple[list[str], list[tuple[str, TDType]]]:
        if m not in self._schema:
            ident = _ident(m)
            tags = [v[0] for s in self._query(f"SHOW TAG KEYS FROM {ident}") for v in s.get("values", [])]
            seen: dict[str, str] = {}
            for s in self._query(f"SHOW FIELD KEYS FROM {ident}"):
                for key, kind in s.get("values", []):
                    if key in seen and seen[key] != kind:
                        if self.conflict == "error":
                            raise SourceError(f"{self.where}: measurement {m!r} field {key!r} is {seen[key]} in"
                                              f" some shards and {kind} in others; add field_conflict=varchar"
                                              f" to read it as text")
                        seen[key] = "string"
                    seen.setdefault(key, kind)
            if not seen:
                raise SourceError(f"{self.where}: measurement {m!r} not found in database {self.db!r}")
            fields = [(k, TDType(FIELD_TYPES.get(kind, "VARCHAR"))) for k, kind in seen.items()]
            self._schema[m] = (tags, fields)
        return self._schema[m]

    def catalog(self) -> Catalog:
        cat = Catalog()
        for m in self._measurements():
            tags, fields = self._describe(m)
            cat.add_stable(SuperTable(self.database, m, (Column("ts", TDType("TIMESTAMP")),
                                                          *(Column(f, t) for f, t in fields)),
                                      tuple(Column(t, TDType("VARCHAR")) for t in tags), "ns"))
        return cat

    def partitions(self) -> list[str]:
        return self._measurements()

    # -- reading ----------------------------------------------------------------------------------

    def read(self, partition: str, start: Any = None) -> Iterator[TableBatch]:
        m = partition
        tags, fields = self._describe(m)
        lo = int(start) if start is not None else self.begin
        last_data = time.monotonic()
        while True:
            hi = lo + self.window
            if self.end is not None:
                if lo >= self.end:
                    return
                hi = min(hi, self.end)
            else:
                now = time.time_ns()
                if hi > now:  # the window is still open: wait for it to close
                    if self.idle is not None and time.monotonic() - last_data >= self.idle:
                        return
                    time.sleep(min((hi - now) / NS, 1.0))
                    continue
            q = (f"SELECT {', '.join(_ident(f) for f, _ in fields)} FROM {_ident(m)}"
                 f" WHERE time >= {lo} AND time < {hi} GROUP BY *")
            out: list[TableBatch] = []
            for series in self._chunks(q):
                out.append(self._batch(m, tags, fields, series))
            if out:
                last_data = time.monotonic()
                last = out[-1]
                out[-1] = TableBatch(last.spec, last.data, partition, hi)
                yield from out
            lo = hi

    def _batch(self, m: str, tags: list[str], fields: list[tuple[str, TDType]], series: dict[str, Any]
               ) -> TableBatch:
        values = series.get("values") or []
        names = series["columns"]
        schema = {"time": pl.Int64, **{f: _PL[t.name] for f, t in fields}}
        df = pl.DataFrame(values, schema=[(c, schema.get(c, pl.String)) for c in names], orient="row",
                          strict=False)
        tagvals = {t: (series.get("tags") or {}).get(t) or None for t in tags}
        key = m + "".join(f",{t}={v}" for t, v in sorted(tagvals.items()) if v is not None)
        name = self._name(key, tagvals)
        cols = [Column("ts", TDType("TIMESTAMP"))] + [Column(f, sized(t, df[f])) for f, t in fields]
        tagcols = [Column(t, sized(TDType("VARCHAR"), pl.Series([tagvals[t] or ""]))) for t in tags]
        spec = TableSpec(name, tuple(cols), self.database, m, tuple(tagcols), tuple(tagvals[t] for t in tags), "ns")
        data = df.select(pl.col("time").cast(pl.Datetime("ns")).alias("ts"), *(pl.col(f) for f, _ in fields))
        return TableBatch(spec, conform(data.to_arrow(), spec), m, None)

    def _name(self, key: str, tagvals: dict[str, str | None]) -> str:
        if self.tbname:
            try:
                return self.tbname.format(**{k: v or "" for k, v in tagvals.items()})
            except (KeyError, IndexError, ValueError) as e:
                raise DsnError(f"{self.where}: tbname={self.tbname!r} names {e}, which is not a tag") from None
        return "t_" + hashlib.md5(key.encode()).hexdigest()[:16]


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
