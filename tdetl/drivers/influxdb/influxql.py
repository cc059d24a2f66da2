"""InfluxDB 1.x, read with InfluxQL over plain HTTP ``/query`` (``chunked=true&epoch=ns``): the
server streams one JSON document per chunk, so a window is never held whole. influxdb-client cannot
talk to 1.6 (its /api/v2 endpoints appear in 1.8)."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import polars as pl

from ...errors import SourceError
from ...polars_types import polars_type
from ...types import TDType
from ..common.http import open_json_api


class InfluxQL:
    """Schema queries and window reads against one database (``bucket=db[/rp]``)."""

    def __init__(self, base: str, bucket: str, user: str | None, password: str | None, chunk: int,
                 where: str) -> None:
        self.base, self.where, self.chunk = base, where, chunk
        self.db, _, self.rp = bucket.partition("/")
        self.user, self.password = user, password

    def _request(self, q: str, chunked: bool = False) -> Any:
        args = {"db": self.db, "q": q, "epoch": "ns"}
        if self.rp:
            args["rp"] = self.rp
        if self.user:
            args.update(u=self.user, p=self.password or "")
        if chunked:
            args.update(chunked="true", chunk_size=str(self.chunk))
        url = f"{self.base}/query?{urllib.parse.urlencode(args)}"
        return open_json_api(url, server="InfluxDB", base=self.base, what=repr(q), where=self.where, timeout=60,
                             message=lambda doc: doc.get("error") or doc["results"][0].get("error"))

    def _query(self, q: str) -> list[dict[str, Any]]:
        with self._request(q) as resp:
            doc = json.loads(resp.read())
        res = doc["results"][0]
        if "error" in res:
            raise SourceError(f"{self.where}: InfluxDB: {q!r}: {res['error']}")
        return res.get("series", [])

    def _values(self, q: str) -> list[list[Any]]:
        return [v for s in self._query(q) for v in s.get("values", [])]

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

    def measurements(self, begin: int, stop: int) -> list[str]:
        dbs = [v[0] for v in self._values("SHOW DATABASES")]
        if self.db not in dbs:
            have = ", ".join(dbs) or "none"
            raise SourceError(f"{self.where}: database not found: {self.db} (the server has: {have})")
        return [v[0] for v in self._values("SHOW MEASUREMENTS")]

    def describe(self, m: str, begin: int, stop: int) -> tuple[list[str], list[tuple[str, str]]]:
        """Tag keys, and (field, type) as each shard has it (a field typed anew in a shard repeats)."""
        tags = [v[0] for v in self._values(f"SHOW TAG KEYS FROM {_ident(m)}")]
        return tags, [(k, kind) for k, kind in self._values(f"SHOW FIELD KEYS FROM {_ident(m)}")]

    def window(self, m: str, tags: list[str], fields: list[tuple[str, TDType]], lo: int, hi: int
               ) -> Iterator[tuple[dict[str, str | None], pl.DataFrame]]:
        q = (f"SELECT {', '.join(_ident(f) for f, _ in fields)} FROM {_ident(m)}"
             f" WHERE time >= {lo} AND time < {hi} GROUP BY *")
        schema = {"time": pl.Int64, **{f: polars_type(t) for f, t in fields}}
        for series in self._chunks(q):
            names = series["columns"]
            df = pl.DataFrame(series.get("values") or [], schema=[(c, schema.get(c, pl.String)) for c in names],
                              orient="row", strict=False)
            tagvals = {t: (series.get("tags") or {}).get(t) or None for t in tags}
            yield tagvals, df.select(pl.col("time").cast(pl.Datetime("ns")).alias("ts"),
                                     *(pl.col(f) for f, _ in fields))

    def close(self) -> None:
        pass


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'

