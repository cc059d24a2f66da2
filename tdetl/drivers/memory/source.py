"""``memory:<key>?stable=…&table=…&tags=…`` as a source: Arrow data the Python API registered under a
key in this process (:func:`tdetl.write`), run through the same model, ``--on`` situations and sink as
any other source. Not for the command line: a key names nothing outside the process that made it.

Rows map to tables as ``tdetl.write`` documents: ``table`` is a column holding child-table names, or a
table name; ``tags`` name tag columns; ``stable`` the super table (without it, ``table`` is a normal
table). The first timestamp column that is neither is the primary key. Timestamps with a zone are
taken in UTC; naive ones are UTC already. Dictionary (categorical) columns are their values."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ...capabilities import SourceCapabilities
from ...dsn import Dsn
from ...errors import ConfigError, DsnError
from ...model import Catalog, TableBatch
from ...options import Options
from ...params import DATABASE, Param, Spec
from ...quality import Rejects
from ...readahead import ahead
from ...source import Source, ending_at
from ...transform.casts import FrameCaster
from ...transform.parser import Model, TableBuilder
from ...types import type_from_arrow
from ..common.columnar import numbered

_DATA: dict[str, pa.Table | pa.RecordBatchReader] = {}
_LOCK = threading.Lock()


def register(key: str, data: pa.Table | pa.RecordBatchReader) -> None:
    with _LOCK:
        _DATA[key] = data


def unregister(key: str) -> None:
    with _LOCK:
        _DATA.pop(key, None)


def plain(col: Any) -> Any:
    """A column as the type map takes it: UTC instants without a zone, dictionaries decoded."""
    t = col.type
    if pa.types.is_dictionary(t):
        return plain(pc.cast(col, t.value_type))
    if pa.types.is_timestamp(t) and t.tz is not None:
        return pc.cast(col, pa.timestamp(t.unit))  # the stored instant is UTC: only the zone goes
    return col


class MemorySource(Source):
    capabilities = SourceCapabilities()
    spec = Spec(Param("stable", "text", None, "the super table (absent: table is a normal table)"),
                Param("table", "text", None, "a column holding child-table names, or the table's name"),
                Param("tags", "list", help="tag columns"), DATABASE)

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        key = dsn.raw_path or dsn.object
        with _LOCK:
            data = _DATA.get(key)
        if data is None:
            raise DsnError(f"{dsn.masked()}: no data is registered under {key!r} (memory: is tdetl.write's)")
        self.data = data
        cfg = self.config
        self.where = "tdetl.write"
        names = list(data.schema.names)
        types = {f.name: type_from_arrow(plain(pa.array([], f.type)).type, f"{self.where}: column {f.name!r}")
                 for f in data.schema}
        stable, table, tags = cfg["stable"], cfg["table"], list(cfg["tags"])
        for t in tags:
            if t not in types:
                raise ConfigError(f"{self.where}: tag {t!r} is not a column (columns: {', '.join(names)})")
        if stable and not table:
            raise ConfigError(f"{self.where}: name the child tables: table=<a column of names, or one name>")
        if not table:
            raise ConfigError(f"{self.where}: give table=<name> (and stable= for a super table)")
        if stable and not tags:
            raise ConfigError(f"{self.where}: a super table needs at least one tag: tags=[<column>, ...]")
        by_column = table in types
        if not stable and (by_column or tags):
            raise ConfigError(f"{self.where}: a column of table names and tags need stable=<super table>")
        rest = [n for n in names if n not in tags and not (by_column and n == table)]
        ts = next((n for n in rest if types[n].name == "TIMESTAMP"), None)
        if ts is None:
            raise ConfigError(f"{self.where}: no timestamp column among {', '.join(rest)} (the primary key)")
        columns = (ts, *[n for n in rest if n != ts])
        if len(columns) < 2:
            raise ConfigError(f"{self.where}: a table needs a column besides its timestamp {ts!r}")
        name = "{" + table + "}" if by_column else table.replace("{", "{{").replace("}", "}}")
        model = Model(name, stable or None, tuple(tags), columns)
        self.builder = TableBuilder((model,), types, cfg["database"], self.where)
        self.caster = FrameCaster(())

    def catalog(self) -> Catalog:
        cat = Catalog()
        for st in self.builder.stables():
            cat.add_stable(st)
        cat.precision = self.builder.precision
        return cat

    def _pieces(self) -> Iterator[pa.Table]:
        """``--batch-rows`` rows at a time, whatever the chunks (a query result's are 65,536 rows, a
        reader's may be smaller): each piece costs the build the same Python work, whatever its size."""
        rows = self.options.batch_rows
        if isinstance(self.data, pa.Table):
            for off in range(0, self.data.num_rows, rows):
                yield self.data.slice(off, rows)
            return
        held: list[pa.RecordBatch] = []
        n = 0
        for b in self.data:
            held.append(b)
            n += b.num_rows
            if n >= rows:
                yield pa.Table.from_batches(held, self.data.schema)
                held, n = [], 0
        if held:
            yield pa.Table.from_batches(held, self.data.schema)

    def read(self, partition: str, start: Any = None) -> Iterator[TableBatch]:
        if start is not None:
            return

        def built() -> Iterator[list[TableBatch]]:
            done = 0

            def locate(row: int) -> tuple[str, dict[str, Any]]:
                return f"{self.where}: row {row}", {"row": row}

            for b in self._pieces():
                if not b.num_rows:
                    continue
                frame = numbered(pa.Table.from_arrays([plain(c) for c in b.columns], names=b.schema.names), done)
                done += b.num_rows
                yield self.builder.build(self.caster.cast(frame, self.where, locate, self.rejects), self.rejects,
                                         locate, partition, None)

        def flat() -> Iterator[TableBatch]:
            for tables in ahead(built(), 2, "tdetl-memory-build"):  # built while the pipeline writes
                yield from tables
        yield from ending_at(flat(), partition, "done")
