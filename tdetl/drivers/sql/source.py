"""What the SQL sources share (taosX's SQL source shape): a SQL template read window by window
from ``beginTime`` to ``endTime`` (without it, realtime: each window once it closed ``delay`` ago),
one partition per row of the ``subtables`` query (its columns fill ``${column}``), each window's end
its resume position. Rows arrive typed as Arrow from the reader; ``--parser``'s ``model`` maps them to
a super table, child-table name template and tags (without one: one table, ``table=``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol

import pyarrow as pa

from ...dsn import Dsn
from ...errors import ConfigError, DsnError, SourceError, shown
from ...model import Catalog, TableBatch
from ...options import Options
from ...params import DATABASE, IDLE, TIME_RANGE, Param
from ...quality import Rejects
from ...readahead import ahead
from ...source import Source, ending_at
from ...transform.casts import FrameCaster
from ...transform.parser import Model, TableBuilder
from ...types import TDType
from ..common.columnar import numbered, plan_tables
from ..common.series import TimeRange
from .template import Template, zone

WHOLE = "sql"  # the one partition without a subtables query
AHEAD = 4  # fetched pieces (ADBC: ~16 MiB each) built into tables ahead of the pipeline


class Reader(Protocol):
    """One connection to the database (each partition's reader its own)."""

    def rows(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """A small result (the subtables query) as column names and rows."""

    def batches(self, sql: str) -> Iterator[pa.RecordBatch]:
        """The query's rows, normalized (tdetl/drivers/sql/arrow.py), at least one batch (maybe empty)."""

    def close(self) -> None: ...


SQL_PARAMS = (
    Param("sql", "file", None, "required: the query, with ${start} and ${end} (or ${start_no_tz}, ${start_date}...)"
                               " cutting it into windows and ${column} from the subtables row; @path reads a file"),
    Param("subtables", "file", None, "a query whose rows each make a partition, their columns filling ${column}"
                                     " in sql (taosX's subtable field); @path reads a file"),
    TIME_RANGE[0], TIME_RANGE[1],
    Param("readWindow", "text", "D", "D, H, M or a duration such as 10s: the span of one query", aliases=("interval",)),
    Param("delay", "duration", 0.0, "without endTime, read a window only once it closed this long ago (rows that"
                                    " arrive late)"),
    Param("timezone", "text", "UTC", "the zone of timestamps and dates stored without one, and of ${start_no_tz}"
                                     " and ${start_date} (UTC, Asia/Shanghai or +08:00)"),
    Param("table", "text", None, "the table all rows go to without a --parser model"),
    IDLE, DATABASE)


class SqlSource(Source):

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        cfg = self.config
        # the DSN without its parameters: the query is named where it matters, once and bounded
        where = self.where = f"{dsn.scheme}://{dsn.user + '@' if dsn.user else ''}{dsn.host or 'localhost'}" \
            f"{':' + str(dsn.port) if dsn.port else ''}/{dsn.object}"
        if not cfg["sql"]:
            raise DsnError(f"{where}: sql is required (the query, e.g. sql=select * from t where ts >= '${{start}}'"
                           f" and ts < '${{end}}')")
        self.tzname = cfg["timezone"].strip() or "UTC"
        self.tz = zone(self.tzname, where)
        self.database = cfg["database"]
        self._subtables: tuple[list[str], list[str]] | None = None  # columns, partitions
        columns = self.subtable_rows()[0] if cfg["subtables"] else []
        self.template = Template.parse(cfg["sql"], where, tuple(columns))
        self.range = TimeRange(cfg, where) if self.template.windowed else None
        if options.parser is None and not cfg["table"]:
            raise ConfigError(f"{where}: give table=<name> (every row into one table) or --parser with a model")
        self._plan: tuple[FrameCaster, TableBuilder] | None = None

    # -- what each driver gives -------------------------------------------------------------------

    def connect(self) -> Reader:
        raise NotImplementedError

    @staticmethod
    def escape(text: str) -> str:
        """A subtable value inside a quoted literal of the template."""
        return text.replace("'", "''")

    # -- partitions: subtable rows x spans of windows ----------------------------------------------

    def subtable_rows(self) -> tuple[list[str], list[str]]:
        if self._subtables is None:
            reader = self.connect()
            try:
                names, rows = reader.rows(self.config["subtables"])
            finally:
                reader.close()
            for row in rows:
                for name, v in zip(names, row):
                    if v is None:
                        raise SourceError(f"{self.where}: the subtables query gave NULL in column {name!r}; add"
                                          f" 'WHERE {name} IS NOT NULL' (a NULL cannot fill ${{{name}}})")
            parts = sorted({json.dumps(list(r), default=str, ensure_ascii=False) for r in rows})
            self._subtables = names, parts
        return self._subtables

    def _names(self) -> list[str]:
        return self.subtable_rows()[1] if self.config["subtables"] else [WHOLE]

    def partitions(self) -> list[str]:
        return self.range.partitions(self._names(), False) if self.range else self._names()

    def spread_partitions(self) -> list[str]:
        return self.range.partitions(self._names(), True) if self.range else self._names()

    def endless(self, partition: str) -> bool:
        return self.range is not None and self.range.end is None

    def _values(self, name: str) -> dict[str, Any]:
        if name == WHOLE and not self.config["subtables"]:
            return {}
        return dict(zip(self.subtable_rows()[0], json.loads(name)))

    # -- tables -------------------------------------------------------------------------------------

    def _single(self, types: dict[str, TDType], names: list[str]) -> Model:
        if not names or types[names[0]].name != "TIMESTAMP":
            raise ConfigError(f"{self.where}: the first column of the query must be the timestamp (it is"
                              f" {names[0] if names else 'missing'!r}); give --parser with a model to choose columns")
        return Model(self.config["table"], None, (), tuple(names))

    def plan(self) -> tuple[FrameCaster, TableBuilder]:
        """The tables, from the schema of the query over an empty window (no rows read)."""
        if self._plan is None:
            first = self._names()
            sql = self._render(first[0] if first else WHOLE, *(self._empty()))
            reader = self.connect()
            try:
                schema = next(iter(reader.batches(sql))).schema
            finally:
                reader.close()
            self._plan = plan_tables(schema, self.options.parser, lambda t: self._single(t, schema.names),
                                     self.database, self.where)
        return self._plan

    def _empty(self) -> tuple[int, int]:
        begin = self.range.begin if self.range else 0
        return begin, begin

    def catalog(self) -> Catalog:
        cat = Catalog()
        for st in self.plan()[1].stables():
            cat.add_stable(st)
        cat.precision = self.plan()[1].precision
        return cat

    # -- reading ------------------------------------------------------------------------------------

    def _render(self, name: str, lo: int, hi: int) -> str:
        return self.template.render(lo, hi, self.tz, self._values(name), self.escape)

    def _window(self, reader: Reader, sql: str, partition: str, label: str) -> Iterator[TableBatch]:
        caster, builder = self.plan()

        def built() -> Iterator[list[TableBatch]]:
            done = 0

            def locate(row: int) -> tuple[str, dict[str, Any]]:
                return f"{label}: row {row + 1}", {"source": label, "row": row + 1}

            for piece in ahead(reader.batches(sql), AHEAD, "tdetl-sql-fetch"):  # fetch while building
                if not piece.num_rows:
                    continue
                frame = numbered(piece, done)
                done += piece.num_rows
                yield builder.build(caster.cast(frame, label, locate, self.rejects), self.rejects, locate, partition,
                                    None)

        for tables in ahead(built(), AHEAD, "tdetl-sql-build"):  # and both while the pipeline flushes
            yield from tables

    def read(self, partition: str, start: Any = None) -> Iterator[TableBatch]:
        reader = self.connect()
        try:
            if self.range is None:  # no time in the template: one query, its end the position
                if start is None:
                    yield from ending_at(self._window(reader, self._render(partition, 0, 0), partition, self.where),
                                         partition, "done")
                return
            name, span = self.range.span_of(partition)
            for lo, hi in self.range.windows(start, span):
                label = f"{self.where} [{_short(name)}{' ' if name != WHOLE else ''}window {lo}..{hi}]"
                yield from ending_at(self._window(reader, self._render(name, lo, hi), partition, label), partition, hi,
                                     self.range.saw_data)
        finally:
            reader.close()


def _short(name: str) -> str:
    return "" if name == WHOLE else shown(name, 80, quote=False)


def first_line(e: BaseException) -> str:
    """A driver's error, on one line and bounded (servers send several, with hints and positions)."""
    text = str(e).strip().splitlines()
    return shown(text[0] if text else type(e).__name__, 300, quote=False)
