"""``tdetl verify -f A -t B``: proof that two endpoints hold the same tables, rows and tags.

Each side is read table by table (any tdetl source — TDengine over any transport, ``local:``
backups, CSV — plus the DuckDB and Parquet exports tdetl writes) and summarised per table: row
count, first and last timestamp, tag values, and a content checksum. The checksum is the sum of
per-row hashes computed column-wise (Polars ``hash_rows`` over columns normalised to one type per
kind: timestamps as epoch ns, integers as int64, floats as float64, text and binary as large
types), so it does not depend on row order or on how an endpoint types its columns, and a NULL
hashes differently from every value. ``start``/``end`` limit both sides to ``start <= ts < end``,
so a live table can be compared up to a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .drivers import as_dsn, open_source
from .dsn import Dsn
from .errors import ConfigError
from .grouping import split_by_table
from .options import Options

EXPORTS = ("duckdb", "parquet")  # read here: tdetl writes them, but has no source for them


@dataclass
class Digest:
    """What one table holds, in a form two endpoints can be compared by."""

    rows: int = 0
    first: int | None = None  # epoch ns
    last: int | None = None
    hi: int = 0  # the checksum: sums of the upper and lower 32 bits of the row hashes
    lo: int = 0
    columns: tuple[str, ...] = ()
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def checksum(self) -> str:
        return f"{((self.hi << 32) + self.lo) & 0xFFFFFFFFFFFFFFFF:016x}"

    def add(self, data: pa.RecordBatch) -> None:
        import polars as pl

        if not data.num_rows:
            return
        ts = _epoch_ns(data.column(0))
        lo, hi = pc.min_max(ts).values()
        lo_v, hi_v = lo.as_py(), hi.as_py()
        self.first = lo_v if self.first is None or (lo_v is not None and lo_v < self.first) else self.first
        self.last = hi_v if self.last is None or (hi_v is not None and hi_v > self.last) else self.last
        self.rows += data.num_rows
        names = sorted(data.schema.names)
        self.columns = tuple(names)
        norm = pa.table({n: _normal(data.column(n)) for n in names})
        hashes = pl.from_arrow(norm).hash_rows(seed=1013).to_arrow()
        self.hi += pc.sum(pc.shift_right(hashes, pa.scalar(32, pa.uint64()))).as_py() or 0
        self.lo += pc.sum(pc.bit_wise_and(hashes, pa.scalar(0xFFFFFFFF, pa.uint64()))).as_py() or 0


def _epoch_ns(col: pa.Array) -> pa.Array:
    if pa.types.is_timestamp(col.type):
        return col.cast(pa.timestamp("ns", col.type.tz)).view(pa.int64()) if col.type.unit != "ns" \
            else col.view(pa.int64())
    return col.cast(pa.int64())


def _normal(col: pa.Array) -> pa.Array:
    t = col.type
    if pa.types.is_timestamp(t):
        return _epoch_ns(col)
    if pa.types.is_integer(t):
        return col if t == pa.uint64() else col.cast(pa.int64())
    if pa.types.is_floating(t):
        return col.cast(pa.float64())
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return col.cast(pa.large_string())
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return col.cast(pa.large_binary())
    if pa.types.is_decimal(t):
        return col.cast(pa.large_string())
    return col


def _in_range(data: pa.RecordBatch, start: int | None, end: int | None) -> pa.RecordBatch:
    if start is None and end is None:
        return data
    ts = _epoch_ns(data.column(0))
    mask = None
    if start is not None:
        mask = pc.greater_equal(ts, start)
    if end is not None:
        m = pc.less(ts, end)
        mask = m if mask is None else pc.and_(mask, m)
    return data.filter(mask)


def _from_source(dsn: Dsn) -> Iterator[tuple[str, dict[str, Any], pa.RecordBatch | None]]:
    src = open_source(dsn, Options())
    try:
        cat = src.catalog()
        for spec in cat.tables.values():  # tables known but empty are compared too
            yield spec.name, spec.tag_dict, None
        for part in src.partitions():
            for b in src.read(part):
                yield b.spec.name, b.spec.tag_dict, b.data
    finally:
        src.close()


def _from_export(dsn: Dsn, tag_names: set[str]) -> Iterator[tuple[str, dict[str, Any], pa.RecordBatch | None]]:
    """DuckDB or Parquet as tdetl exports them: per super table, ``tbname`` and tag columns first."""
    tables: list[tuple[str, pa.Table]] = []
    if dsn.driver == "duckdb":
        import duckdb

        if not dsn.path.exists():
            raise ConfigError(f"{dsn.masked()}: no such DuckDB file")
        with duckdb.connect(str(dsn.path), read_only=True) as con:
            for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
                tables.append((name, con.sql(f'SELECT * FROM "{name}"').to_arrow_table()))
    else:
        import pyarrow.parquet as pq

        files = sorted(dsn.path.glob("*.parquet")) if dsn.path.is_dir() else [dsn.path]
        if not files or not files[0].exists():
            raise ConfigError(f"{dsn.masked()}: no Parquet files there")
        tables = [(f.stem, pq.read_table(f)) for f in files]
    for name, table in tables:
        data = table.combine_chunks().to_batches()
        if not data:
            continue
        batch = pa.concat_batches(data) if len(data) > 1 else data[0]
        if "tbname" not in batch.schema.names:
            yield name, {}, batch
            continue
        tags = [n for n in batch.schema.names if n in tag_names]
        body = [n for n in batch.schema.names if n != "tbname" and n not in tags]
        for tb, rows in split_by_table(batch.select(["tbname", *tags, *body])):
            values = {t: rows.column(t)[0].as_py() for t in tags}
            yield tb, values, rows.select(body)


def digests(dsn: Dsn, start: int | None, end: int | None, tag_names: set[str]) -> dict[str, Digest]:
    out: dict[str, Digest] = {}
    items = _from_export(dsn, tag_names) if dsn.driver in EXPORTS else _from_source(dsn)
    for name, tags, data in items:
        d = out.setdefault(name, Digest())
        d.tags = tags
        if data is not None:
            d.add(_in_range(data, start, end))
    return out


def verify(a: str | Dsn, b: str | Dsn, start: int | None = None, end: int | None = None) -> dict[str, Any]:
    """Compare two endpoints table by table: ``{"tables": n, "rows": n, "differences": [...]}``,
    each difference naming the table and what differs (missing, extra, rows, first, last,
    checksum, tags)."""
    da, db = as_dsn(a), as_dsn(b)
    ordered = sorted([(0, da), (1, db)], key=lambda x: x[1].driver in EXPORTS)
    tag_names: set[str] = set()
    got: dict[int, dict[str, Digest]] = {}
    for i, dsn in ordered:
        got[i] = digests(dsn, start, end, tag_names)
        tag_names |= {k for d in got[i].values() for k in d.tags}
    left, right = got[0], got[1]
    diffs: list[dict[str, Any]] = []
    for name in sorted(set(left) | set(right)):
        x, y = left.get(name), right.get(name)
        if x is None or y is None:
            diffs.append({"table": name, "what": "missing" if y is None else "extra",
                          "rows": (x or y).rows})  # type: ignore[union-attr]
            continue
        what = [k for k in ("rows", "first", "last") if getattr(x, k) != getattr(y, k)]
        if x.rows and y.rows and (x.hi, x.lo) != (y.hi, y.lo):
            what.append("checksum" if x.columns == y.columns else "columns")
        shared = set(x.tags) & set(y.tags)
        if any(_tag(x.tags[k]) != _tag(y.tags[k]) for k in shared):
            what.append("tags")
        if what:
            diffs.append({"table": name, "what": ",".join(what), "rows": x.rows, "other_rows": y.rows,
                          "checksum": x.checksum, "other_checksum": y.checksum})
    return {"tables": len(set(left) | set(right)), "rows": sum(d.rows for d in left.values()),
            "differences": diffs}


def _tag(v: Any) -> Any:
    return v.decode(errors="replace") if isinstance(v, bytes) else v


def render(report: dict[str, Any], a: str, b: str) -> str:
    diffs = report["differences"]
    if not diffs:
        return f"identical: {report['tables']} tables, {report['rows']} rows"
    lines = [f"{len(diffs)} of {report['tables']} tables differ ({a} vs {b}):",
             f"{'table':<32} {'what':<24} {'rows':>12} {'other rows':>12}"]
    for d in diffs:
        lines.append(f"{d['table']:<32} {d['what']:<24} {d['rows']:>12} {d.get('other_rows', ''):>12}")
    return "\n".join(lines)
