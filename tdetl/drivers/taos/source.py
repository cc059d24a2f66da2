"""``taos://``, ``taos+ws://``, ``taos+http://`` as a source: query a TDengine database.

History reads each child or normal table as a partition (``--jobs`` read tables in parallel), in
time order, resumable from the last timestamp handed on. A super table of many small child tables
(at least ``GROUP_TABLES``, fewer than ``SMALL_ROWS`` rows each on average) is read in groups of
several tables per query instead (one query per table costs the client ~1 ms of its own): a
table's group follows from its name alone (a hash), so a rerun's groups are the same whatever tables
were added meanwhile; within a group, tables are read in name order, at most ``GROUP_QUERY_ROWS``
rows per query, and a group resumes after the last table of its last query made durable. A child
table holding more than that keeps a partition of its own. ``select-from-stable`` reads many child
tables per query from their super table instead. ``mode=realtime`` polls every ``interval`` for
rows older than ``now - excursion`` (late rows within ``excursion`` are still caught), starting
``restro`` back; ``mode=all`` does history up to the moment the run started, then realtime.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from ...capabilities import SourceCapabilities
from ...dsn import Dsn
from ...errors import ConfigError, DsnError, SourceError, TaosError
from ...grouping import split_by_table
from ...model import Catalog, TableBatch, TableSpec, conform
from ...options import Options
from ...params import Param, Spec
from ...progress import Lag
from ...quality import Rejects
from ...source import POSITION_EVERY, SCHEMA_TRAVELS, Source, ending_at
from ...taos import catalog as taos_catalog
from ...taos.conn import Connection
from ...taos.connect import open_connection
from ...taos.ddl import ident, literal
from ...taos.params import TAOS_CONNECTION
from ...types import TDType

log = logging.getLogger("tdetl.taos")

_UNITS = {"ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
REALTIME = "realtime"
IN_LIST = 500  # child tables per select-from-stable query
GROUP_TABLES = 100  # a super table with at least this many child tables ...
SMALL_ROWS = 10_000  # ... holding fewer rows than this on average is read in groups
GROUP_QUERY_ROWS = POSITION_EVERY // 4  # rows per grouped query: each ends with a position
SPREAD_GROUPS = 16  # groups per super table at least, when a cluster spreads them (a power of two)
TABLE_NOT_EXIST = 0x2603
JOINED_ROWS = 65_536  # fetched blocks are joined into batches of at least this many rows


def _positioned(spec: TableSpec, data: pa.RecordBatch, partition: str) -> TableBatch:
    last = data.column(0)[-1]
    return TableBatch(spec, data, partition, last.value if last.is_valid else None)


class TaosSource(Source):
    requires: ClassVar[dict[str, str]] = {"websockets": "taos"}  # module -> the extra that installs it
    protocols = (None, "ws", "wss", "http", "https")
    quality_defaults = SCHEMA_TRAVELS
    # tables read at once: the server answers one query while the client decodes another
    capabilities = SourceCapabilities(partitions="tables", default_jobs=4)
    spec = Spec(
        Param("stables", "list", help="only these super tables"),
        Param("tables", "list", help="only these tables: {stable}.{table} or {table}, or @file"),
        Param("start", "instant", None, "rows with start <= ts (RFC 3339 with a zone)"),
        Param("end", "instant", None, "rows with ts < end"),
        Param("mode", "choice", "history", "history: what is there; realtime: poll for new rows; all: both",
              choices=("history", "realtime", "all")),
        Param("interval", "duration", 1.0, "realtime poll interval"),
        Param("restro", "duration", 0.0, "realtime starts this far back"),
        Param("excursion", "duration", 0.5, "realtime reads up to now - excursion (late rows are caught)"),
        Param("select-from-stable", "flag", False, "read child tables through their super table, 500 per query"),
        *TAOS_CONNECTION)

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        where = dsn.masked()
        self.db, _, self.sub = dsn.object.strip("/").partition(".")
        cfg = self.config
        self.every = not self.db  # taos://host:port: every user database, as taosdump -A
        if self.every and (cfg["stables"] or cfg["tables"] or cfg["mode"] != "history"):
            raise DsnError(f"{where}: stables=, tables= and mode=realtime|all read one database: name it,"
                           " e.g. taos://host:6030/<db>")
        self.stables = list(cfg["stables"])
        self.tables = list(cfg["tables"])
        self.mode = cfg["mode"]
        self.start: int | None = cfg["start"]  # epoch ns
        self.end: int | None = cfg["end"]
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise DsnError(f"{where}: end={cfg['end']} is not after start={cfg['start']}")
        self.interval = cfg["interval"]
        self.restro = cfg["restro"]
        self.excursion = cfg["excursion"]
        self.from_stable = cfg["select-from-stable"]
        if self.from_stable and any("." not in t for t in self.tables):
            bad = next(t for t in self.tables if "." not in t)
            raise DsnError(f"{where}: with select-from-stable, tables take the form {{stable}}.{{table}} (got {bad!r})")
        self._local = threading.local()
        self._conns: list[Connection] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._catalog: Catalog | None = None
        self.started = time.time_ns()
        self._read_up_to: float | None = None  # realtime: epoch seconds every window has been read up to
        self._groups: dict[tuple[str | None, str], tuple[int, dict[str, int]]] | None = None

    # -- connections ----------------------------------------------------------------------------

    def _conn(self) -> Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = open_connection(self.dsn)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.close()
            except Exception:  # closing is best effort
                pass

    # -- catalog --------------------------------------------------------------------------------

    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = self._read_catalog()
        return self._catalog

    def _read_catalog(self) -> Catalog:
        conn, where = self._conn(), self.dsn.masked()
        if self.every:
            cat = Catalog()
            for db in taos_catalog.user_databases(conn):
                cat.merge(taos_catalog.read_catalog(conn, db, [], [], where))
            if not cat.databases:
                raise SourceError(f"{where}: the server holds no database of its users")
            return cat
        stables, tables = list(self.stables), list(self.tables)
        if self.sub:
            try:
                return taos_catalog.read_catalog(conn, self.db, [self.sub], tables, where)
            except ConfigError:
                return taos_catalog.read_catalog(conn, self.db, stables, [self.sub], where)
        return taos_catalog.read_catalog(conn, self.db, stables, tables, where)

    @property
    def precision(self) -> str:
        return self.catalog().databases[self.db].precision

    def _ticks(self, ns: int, db: str | None = None) -> int:
        """Epoch nanoseconds in the database precision."""
        return ns * _UNITS[self.catalog().databases[db or self.db].precision] // 1_000_000_000

    def _history_end(self, db: str) -> int | None:
        if self.mode == "all":
            bound = self.started - int(self.excursion * 1e9)
            return self._ticks(min(bound, self.end) if self.end is not None else bound, db)
        return self._ticks(self.end, db) if self.end is not None else None

    def _named(self, spec: TableSpec | str, db: str | None) -> str:
        """A partition's table part: ``db.name`` when every database is read, else the name."""
        name = spec if isinstance(spec, str) else spec.name
        return f"{db}.{name}" if self.every else name

    def _located(self, text: str) -> tuple[str, str]:
        """(database, name) of a partition's table part (names hold no dot in TDengine)."""
        if self.every:
            db, _, name = text.partition(".")
            return db, name
        return self.db, text

    def partitions(self) -> list[str]:
        return self._partitions(1)

    def spread_partitions(self) -> list[str]:
        """On a cluster, small tables in at least ``SPREAD_GROUPS`` groups, so they spread too."""
        return self._partitions(SPREAD_GROUPS)

    def _partitions(self, least_groups: int) -> list[str]:
        cat = self.catalog()
        parts: list[str] = []
        if self.mode in ("history", "all"):
            if self.from_stable:
                by_st: dict[str, list[str]] = {}
                for spec in cat.tables.values():
                    if spec.stable is None:
                        parts.append(f"t:{self._named(spec, spec.database)}")
                    else:
                        by_st.setdefault(self._named(spec.stable, spec.database), []).append(spec.name)
                for st, names in sorted(by_st.items()):
                    names.sort()
                    parts += [f"s:{st}:{i}" for i in range(0, len(names), IN_LIST)]
            else:
                grouped = self._grouped()
                parts += [f"t:{self._named(spec, spec.database)}"
                          for spec in sorted(cat.tables.values(), key=lambda s: (s.database or "", s.name))
                          if not self._in_group(spec)]
                for (db, st), (fewest, _) in sorted(grouped.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
                    buckets = max(fewest, least_groups)
                    parts += [f"g:{self._named(st, db)}:{i}/{buckets}" for i in range(buckets)]
        if self.mode in ("realtime", "all"):
            parts.append(REALTIME)
        return parts

    def _grouped(self) -> dict[tuple[str | None, str], tuple[int, dict[str, int]]]:
        """The super tables read in groups: their number of groups (a power of two, so it changes only
        when the number of tables doubles, and a rerun's groups match the checkpoint's) and each child
        table's rows (one query per super table, once)."""
        if self._groups is not None:
            return self._groups
        cat = self.catalog()
        children: dict[tuple[str | None, str], int] = {}
        for spec in cat.tables.values():
            if spec.stable is not None:
                key = (spec.database, spec.stable)
                children[key] = children.get(key, 0) + 1
        self._groups = {}
        for (db, st), n in children.items():
            if n < GROUP_TABLES or db is None:
                continue
            cond = self._range(cat.stables[(db, st)].columns[0].name, self._start_ticks(db), self._history_end(db))
            counts = {str(name): int(c) for name, c in taos_catalog.rows(
                self._conn(), f"SELECT tbname, COUNT(*) FROM {ident(db)}.{ident(st)}"
                              + (f" WHERE {cond}" if cond else "") + " PARTITION BY tbname")}
            if sum(counts.values()) < SMALL_ROWS * n:
                self._groups[(db, st)] = (1 << max(0, math.ceil(n / IN_LIST) - 1).bit_length(), counts)
        return self._groups

    def _in_group(self, spec: TableSpec) -> bool:
        found = self._grouped().get((spec.database, spec.stable or "")) if spec.stable is not None else None
        return found is not None and found[1].get(spec.name, 0) <= GROUP_QUERY_ROWS

    def _read_group(self, partition: str, db: str, st: str, index: int, buckets: int,
                    resume: Any) -> Iterator[TableBatch]:
        """One group's tables in name order, a query per run of tables holding up to
        ``GROUP_QUERY_ROWS`` rows (fewer with a smaller ``--batch-rows``: checkpoints as often as
        asked); each query's last batch carries the name of its last table."""
        counts = self._grouped().get((db, st), (buckets, {}))[1]
        most = min(GROUP_QUERY_ROWS, self.options.batch_rows)
        names = sorted(s.name for s in self.catalog().tables.values() if s.stable == st and s.database == db
                       and zlib.crc32(s.name.encode()) % buckets == index and self._in_group(s)
                       and (resume is None or s.name > str(resume)))
        lo, hi = self._start_ticks(db), self._history_end(db)
        chunk: list[str] = []
        rows = 0
        for name in [*names, None]:
            n = counts.get(name, 0) if name is not None else 0
            if chunk and (name is None or rows + n > most or len(chunk) == IN_LIST):
                yield from ending_at(self._read_from_stable(partition, db, st, chunk, lo, hi), partition, chunk[-1])
                chunk, rows = [], 0
            if name is not None:
                chunk.append(name)
                rows += n

    def _start_ticks(self, db: str) -> int | None:
        return self._ticks(self.start, db) if self.start is not None else None

    # -- reading --------------------------------------------------------------------------------

    def _range(self, ts: str, lo: int | None, hi: int | None, lo_open: bool = False) -> str:
        conds = []
        if lo is not None:
            conds.append(f"{ident(ts)} {'>' if lo_open else '>='} {lo}")
        if hi is not None:
            conds.append(f"{ident(ts)} < {hi}")
        return " AND ".join(conds)

    def read(self, partition: str, start: Any = None) -> Iterator[TableBatch]:
        if partition == REALTIME:
            yield from self._realtime(partition, start)
            return
        kind, _, rest = partition.partition(":")
        if kind == "t":
            db, name = self._located(rest)
            lo = self._ticks(self.start, db) if self.start is not None else None
            yield from self._read_table(partition, db, name, lo, self._history_end(db), start)
        elif kind == "s":
            where, _, first = rest.rpartition(":")
            db, st = self._located(where)
            names = sorted(s.name for s in self.catalog().tables.values() if s.stable == st and s.database == db)
            chunk = names[int(first):int(first) + IN_LIST]
            lo = self._ticks(self.start, db) if self.start is not None else None
            yield from self._read_from_stable(partition, db, st, chunk, lo, self._history_end(db))
        elif kind == "g":
            where, _, share = rest.rpartition(":")
            db, st = self._located(where)
            index, buckets = (int(v) for v in share.split("/"))
            yield from self._read_group(partition, db, st, index, buckets, start)
        else:
            raise ConfigError(f"{self.dsn.masked()}: unknown partition {partition!r}")

    def _read_table(self, partition: str, db: str, name: str, lo: int | None, hi: int | None,
                    resume: Any) -> Iterator[TableBatch]:
        spec = self.catalog().tables[(db, name)]
        ts = spec.columns[0].name
        lo_open = resume is not None
        if resume is not None:
            lo = int(resume)
        cols = ", ".join(ident(c.name) for c in spec.columns)
        cond = self._range(ts, lo, hi, lo_open)
        sql = f"SELECT {cols} FROM {ident(db)}.{ident(name)}" + (f" WHERE {cond}" if cond else "")
        try:
            yield from self._batches(sql, spec, partition)
        except TaosError as e:
            if e.code & 0xFFFF != TABLE_NOT_EXIST:
                raise
            raise SourceError(f"{self.dsn.masked()}: table {name!r} was dropped from {db!r} during the run"
                              f" ({e.brief.split(' (in ')[0]}); run the same command again to copy the tables"
                              " that remain") from None

    def _batches(self, sql: str, spec: TableSpec, partition: str) -> Iterator[TableBatch]:
        """A table's rows in time order, each batch positioned at its last timestamp. With a
        composite key several rows share a timestamp, and a resume reads ``ts > position``: the
        rows of a batch's last timestamp wait for the next batch, so no position splits them."""
        keyed = any(c.primary_key for c in spec.columns)
        held: pa.RecordBatch | None = None
        for data in self._fetch(sql):
            if not data.num_rows:
                continue
            data = conform(data.rename_columns(spec.schema.names), spec)
            if keyed:
                if held is not None:
                    data = pa.concat_batches([held, data])
                cut = pc.sum(pc.less(data.column(0), data.column(0)[-1])).as_py() or 0
                data, held = data.slice(0, cut), data.slice(cut)
                if not cut:
                    continue
            yield _positioned(spec, data, partition)
        if held is not None and held.num_rows:
            yield _positioned(spec, held, partition)

    def _fetch(self, sql: str) -> Iterator[pa.RecordBatch]:
        """A query's batches; a failure, when sent or while fetched, names the statement."""
        log.debug("%s", sql[:300])
        try:
            yield from self._conn().query(sql).batches(JOINED_ROWS)
        except TaosError as e:
            hint = TaosError.RERUN_HINT if e.unreachable else ""
            raise TaosError(e.code, f"{e.message} (in {sql[:200]}){hint}", self.dsn.masked()) from None

    def _read_from_stable(self, partition: str, db: str, st: str, names: list[str], lo: int | None,
                          hi: int | None) -> Iterator[TableBatch]:
        cat = self.catalog()
        stable = cat.stables[(db, st)]
        cols = ", ".join(ident(c.name) for c in stable.columns)
        names_sql = ", ".join(literal(TDType("VARCHAR"), n) for n in names)
        cond = self._range(stable.columns[0].name, lo, hi)
        sql = (f"SELECT tbname, {cols} FROM {ident(db)}.{ident(st)} WHERE tbname IN ({names_sql})"
               + (f" AND {cond}" if cond else ""))
        for data in self._fetch(sql):
            for name, rows in split_by_table(data):
                spec = cat.tables[(db, name)]
                body = rows.drop_columns([rows.schema.names[0]]).rename_columns(spec.schema.names)
                yield TableBatch(spec, conform(body, spec), partition, None)

    # -- realtime -------------------------------------------------------------------------------

    def _realtime(self, partition: str, resume: Any) -> Iterator[TableBatch]:
        """Poll windows [lo, now - excursion) of every super table and normal table until ``end``
        (or forever); the window's end is the position, so a restart continues after it."""
        if resume is not None:
            lo = int(resume)
        elif self.mode == "all":
            lo = self._history_end(self.db) or 0
        else:
            base = self.start if self.start is not None else time.time_ns() - int(self.restro * 1e9)
            lo = self._ticks(base)
        end = self._ticks(self.end) if self.end is not None else None
        self._read_up_to = lo / _UNITS[self.precision]
        while not self._stop.is_set():
            hi = self._ticks(time.time_ns() - int(self.excursion * 1e9))
            if end is not None:
                hi = min(hi, end)
            if hi > lo:
                yield from ending_at(self._window(lo, hi), partition, hi)
                lo = hi
                self._read_up_to = lo / _UNITS[self.precision]
            if end is not None and lo >= end:
                return
            self._stop.wait(self.interval)

    def endless(self, partition: str) -> bool:
        return partition == REALTIME

    def lag(self) -> Lag | None:
        """Realtime: how far the windows read trail the clock (``excursion`` and up to one
        ``interval`` of it are by design)."""
        up_to = self._read_up_to
        return None if up_to is None else Lag(max(0.0, time.time() - up_to), "seconds")

    def _window(self, lo: int, hi: int) -> Iterator[TableBatch]:
        cat = self.catalog()
        for (db, st_name), st in sorted(cat.stables.items(), key=lambda kv: kv[0][1]):
            if db != self.db:
                continue
            wanted = {s.name for s in cat.tables.values() if s.stable == st_name}
            filtered = bool(self.tables) and not self.stables
            tags = "".join(f", {ident(t.name)}" for t in st.tags)
            cols = ", ".join(ident(c.name) for c in st.columns)
            sql = (f"SELECT tbname{tags}, {cols} FROM {ident(self.db)}.{ident(st_name)}"
                   f" WHERE {self._range(st.columns[0].name, lo, hi)}")
            for data in self._fetch(sql):
                for name, rows in split_by_table(data):
                    if filtered and name not in wanted:
                        continue
                    spec = cat.tables.get((self.db, name))
                    if spec is None:  # a child table created since the run started
                        values = tuple(rows.column(i + 1)[0].as_py() for i in range(len(st.tags)))
                        spec = TableSpec(name, st.columns, self.db, st_name, st.tags, values, st.precision)
                        cat.tables[(self.db, name)] = spec
                    body = rows.select(range(1 + len(st.tags), rows.num_columns))
                    yield TableBatch(spec, conform(body.rename_columns(spec.schema.names), spec), REALTIME)
        for spec in [s for s in cat.tables.values() if s.stable is None]:
            cols = ", ".join(ident(c.name) for c in spec.columns)
            sql = (f"SELECT {cols} FROM {ident(self.db)}.{ident(spec.name)}"
                   f" WHERE {self._range(spec.columns[0].name, lo, hi)}")
            for data in self._fetch(sql):
                if data.num_rows:
                    yield TableBatch(spec, conform(data.rename_columns(spec.schema.names), spec), REALTIME)
