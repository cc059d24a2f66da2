"""DataFrames in and out of TDengine: :func:`query` / :func:`query_batches` read a query's raw blocks
decoded by the codec straight into Arrow (no Python object per value), and :func:`write` runs any
Arrow-exporting data (pyarrow, Polars, pandas, DuckDB) into a ``taos://`` target through the same
pipeline, parser model and ``--on`` situations as ``tdetl run``."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import threading
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa

from .api import start
from .drivers import as_dsn
from .drivers.memory.source import register, unregister
from .dsn import Dsn
from .errors import ConfigError, DsnError, TdetlError, shown
from .progress import Summary
from .quality import Strategies
from .request import RunRequest
from .taos.connect import open_connection
from .taos.ddl import ident

QUERY_ROWS = 65_536  # raw blocks (4,096 rows for a narrow table) joined into batches of at least this many
_PLACEHOLDER = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|\?")


# -- query ------------------------------------------------------------------------------------------

def _literal(v: Any) -> str:
    """A Python value as a TDengine SQL literal (client-side: TDengine has no server-side query parameters)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ConfigError(f"query parameter {v!r}: TDengine SQL has no literal for it")
        return repr(v)
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "'\\x" + bytes(v).hex() + "'"
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.timezone.utc)  # naive times are UTC, as everywhere in tdetl
        return "'" + v.isoformat(timespec="microseconds") + "'"
    if isinstance(v, str):
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise ConfigError(f"query parameter {shown(repr(v), 80, quote=False)}: not a number, text, bytes, datetime"
                      " or None")


def render(sql: str, params: Sequence[Any] | None) -> str:
    """``?`` outside quotes and backticks replaced by the parameters, in order, as literals."""
    if params is None:
        return sql
    if isinstance(params, (str, bytes, Mapping)):
        raise ConfigError("params: a sequence of values, one per ? in the query")
    values = iter(params)
    count = 0

    def one(m: re.Match[str]) -> str:
        nonlocal count
        if m.group(0) != "?":
            return m.group(0)
        count += 1
        try:
            return _literal(next(values))
        except StopIteration:
            raise ConfigError(f"params: the query has more ? than the {count - 1} values given") from None
    out = _PLACEHOLDER.sub(one, sql)
    if next(values, _PLACEHOLDER) is not _PLACEHOLDER:
        raise ConfigError(f"params: {len(params)} values given for {count} ? in the query")
    return out


def _taos(source: str | Dsn) -> Dsn:
    d = as_dsn(source)
    if d.driver != "taos":
        raise DsnError(f"{d.masked()}: query reads TDengine: taos://, taos+ws:// or taos+http:// (not {d.driver}://)")
    return d


def _connect(d: Dsn) -> Any:
    db = d.object.split(".")[0] if d.object else None
    return open_connection(d, db or None)


def _stream(conn: Any, sql: str, batch_rows: int | None) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    try:
        res = conn.query(sql)
    except BaseException:
        conn.close()
        raise
    schema = res.schema("UTC")  # timestamps marked UTC: what they are

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for b in res.batches(batch_rows or QUERY_ROWS):
                if not b.schema.equals(schema):  # the zone is metadata: the same buffers, viewed
                    b = pa.RecordBatch.from_arrays([c.view(f.type) if c.type != f.type else c
                                                    for c, f in zip(b.columns, schema)], schema=schema)
                if batch_rows and b.num_rows > batch_rows:
                    for off in range(0, b.num_rows, batch_rows):
                        yield b.slice(off, batch_rows)
                else:
                    yield b
        finally:
            conn.close()
    return schema, batches()


def query_batches(source: str | Dsn, sql: str, *, params: Sequence[Any] | None = None,
                  batch_rows: int | None = None) -> pa.RecordBatchReader:
    """A query's result as a stream of Arrow batches (results larger than memory): ``source`` is a
    ``taos://``, ``taos+ws://`` or ``taos+http://`` DSN, its database optional; ``params`` fill the
    ``?`` in ``sql`` as literals. The connection closes when the stream is read to its end."""
    d = _taos(source)
    schema, batches = _stream(_connect(d), render(sql, params), batch_rows)
    return pa.RecordBatchReader.from_batches(schema, batches)


def query(source: str | Dsn, sql: str, *, params: Sequence[Any] | None = None, batch_rows: int | None = None,
          jobs: int | None = None) -> pa.Table:
    """A query's result as a ``pyarrow.Table`` (``pl.from_arrow(t)``, ``t.to_pandas()``, DuckDB read it
    without a copy where Arrow allows). Types: timestamps in the database's precision, UTC; DECIMAL
    with its scale; NCHAR/VARCHAR/JSON as text; VARBINARY as binary; GEOMETRY as WKB. With ``jobs``
    a plain ``SELECT … FROM <super table> [WHERE …] [ORDER BY …]`` is split by child table and read
    over that many connections, the ``ORDER BY`` applied to the whole; other queries read serially."""
    sql = render(sql, params)
    d = _taos(source)
    if jobs and jobs > 1:
        split = _parallel(d, sql, jobs, batch_rows)
        if split is not None:
            return split
    schema, batches = _stream(_connect(d), sql, batch_rows)
    return pa.Table.from_batches(list(batches), schema)


_SIMPLE = re.compile(r"^\s*SELECT\s+(?P<cols>.+?)\s+FROM\s+(?P<table>[\w.`]+)(?:\s+WHERE\s+(?P<where>.+?))?"
                     r"(?:\s+ORDER\s+BY\s+(?P<order>.+?))?\s*;?\s*$", re.I | re.S)
_NOT_SPLIT = re.compile(r"\b(GROUP|PARTITION|INTERVAL|LIMIT|SLIMIT|SOFFSET|OFFSET|FILL|HAVING|UNION|JOIN|SESSION|"
                        r"STATE_WINDOW|EVENT_WINDOW|COUNT_WINDOW|DISTINCT|SELECT)\b|\w\s*\(", re.I)
_ORDER_KEY = re.compile(r"^\s*`?(?P<col>\w+)`?(?:\s+(?P<dir>ASC|DESC))?\s*$", re.I)


def _parallel(d: Dsn, sql: str, jobs: int, batch_rows: int | None) -> pa.Table | None:
    """The query split by child table over ``jobs`` connections, or None when it is not a plain select
    of one super table (aggregates, windows, limits and joins read serially)."""
    m = _SIMPLE.match(sql)
    if m is None or _NOT_SPLIT.search(m.group("cols")) or (m.group("where") and _NOT_SPLIT.search(m.group("where"))):
        return None
    keys: list[tuple[str, str]] = []
    for item in (m.group("order") or "").split(",") if m.group("order") else []:
        k = _ORDER_KEY.match(item)
        if k is None:
            return None
        keys.append((k.group("col"), "descending" if (k.group("dir") or "").upper() == "DESC" else "ascending"))
    conn = _connect(d)
    try:
        names = conn.query(f"SELECT DISTINCT tbname FROM {m.group('table')}").table().column(0).to_pylist()
    except TdetlError:
        return None  # not a super table
    finally:
        conn.close()
    if len(names) < 2:
        return None
    groups = [names[i::jobs] for i in range(min(jobs, len(names)))]
    where = f" AND ({m.group('where')})" if m.group("where") else ""
    parts: list[pa.Table | BaseException | None] = [None] * len(groups)

    def run(i: int) -> None:
        listed = ", ".join("'" + n.replace("\\", "\\\\").replace("'", "\\'") + "'" for n in groups[i])
        part_sql = f"SELECT {m.group('cols')} FROM {m.group('table')} WHERE tbname IN ({listed}){where}"
        try:
            schema, batches = _stream(_connect(d), part_sql, batch_rows)
            parts[i] = pa.Table.from_batches(list(batches), schema)
        except BaseException as e:  # raised below, in the caller's thread
            parts[i] = e

    threads = [threading.Thread(target=run, args=(i,), name=f"tdetl-query-{i}") for i in range(len(groups))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in parts:
        if isinstance(p, BaseException):
            raise p
    table = pa.concat_tables([p for p in parts if isinstance(p, pa.Table)])
    if keys:
        missing = [k for k, _ in keys if k not in table.column_names]
        if missing:
            raise ConfigError(f"query with jobs: ORDER BY {missing[0]!r} must be a column of the result")
        table = table.sort_by(keys)
    return table


# -- write ------------------------------------------------------------------------------------------

def as_arrow(data: Any) -> pa.Table | pa.RecordBatchReader:
    """Anything that exports Arrow, as Arrow: pyarrow data, a Polars DataFrame or LazyFrame, a pandas
    DataFrame (NaN and NaT are NULL, as pandas means them), a DuckDB relation, or any object with the
    Arrow PyCapsule stream interface."""
    if isinstance(data, (pa.Table, pa.RecordBatchReader)):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    if module == "polars":
        import polars as pl

        return (data.collect() if isinstance(data, pl.LazyFrame) else data).to_arrow()
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if module in ("duckdb", "_duckdb"):
        got = data.arrow()
        return got if isinstance(got, (pa.Table, pa.RecordBatchReader)) else pa.table(got)
    if hasattr(data, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(data)
    raise ConfigError(f"tdetl.write takes Arrow data (pyarrow, Polars, pandas, DuckDB), not {type(data).__name__}")


def write(data: Any, target: str | Dsn, *, stable: str | None = None, table: str | None = None,
          tags: Sequence[str] = (), create: bool = True, on: Any = None) -> Summary:
    """Write ``data`` (pyarrow Table/RecordBatch/Reader, Polars DataFrame/LazyFrame, pandas DataFrame,
    DuckDB relation) into ``target`` (``taos://…/db``, any transport). ``table`` is the name of a column
    holding child-table names, or a table name; ``tags`` name the tag columns; ``stable`` is the super
    table, created from the data's schema when missing (``create=False``: a missing table is an error).
    The first timestamp column is the primary key; zoned timestamps are stored as UTC instants, naive
    ones are taken as UTC. Existing tables keep their declared types. ``on`` takes the ``--on``
    situations (``{"ts-null": "drop"}``). Returns the run's :class:`~tdetl.progress.Summary`."""
    arrow = as_arrow(data)
    key = uuid.uuid4().hex
    params = {k: v for k, v in (("stable", stable), ("table", table), ("tags", ",".join(tags))) if v}
    source = f"memory:{key}" + ("?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote) if params else "")
    chosen = Strategies.parse(on) if on is not None and not isinstance(on, Strategies) else (on or Strategies())
    if not create:
        _exists(as_dsn(target), stable or table or "")
    register(key, arrow)
    try:
        return start(RunRequest(source, target, on=chosen))
    finally:
        unregister(key)


def _exists(target: Dsn, name: str) -> None:
    """``create=False``: the super table (or normal table) must be there already (child tables of an
    existing super table are still created, as TDengine's own USING … TAGS does)."""
    if target.driver != "taos":
        return
    conn = _connect(target)
    try:
        conn.execute(f"DESCRIBE {ident(name)}")
    except TdetlError as e:
        raise DsnError(f"{target.masked()}: {shown(name, 100)} does not exist and create=False ({e})") from None
    finally:
        conn.close()
