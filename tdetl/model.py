"""Table descriptions and the unit that flows through a pipeline.

A batch travels as a :class:`TableBatch`: an Arrow RecordBatch whose columns follow a
:class:`TableSpec`. A :class:`Catalog` is what a source knows before streaming (databases, super
tables, child tables with tags); sinks use it to create what is missing, backups persist it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import pyarrow as pa

from .errors import ConfigError
from .types import TDType, parse_type, scalar_from_json, scalar_to_json, widen


@dataclass(frozen=True)
class Column:
    """``primary_key`` marks a composite key: the column after the timestamp that, with it, makes
    a row's key (``PRIMARY KEY`` in DDL, ``COMPOSITE KEY`` in DESCRIBE)."""

    name: str
    type: TDType
    primary_key: bool = False

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": str(self.type)}
        if self.primary_key:
            d["primary_key"] = True
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], where: str) -> Column:
        if not isinstance(d.get("name"), str) or not d["name"]:
            raise ConfigError(f"{where}: a column entry without a name: {str(d)[:200]}")
        return cls(d["name"], parse_type(d["type"], f"{where} column {d['name']!r}"), bool(d.get("primary_key")))


def _columns_json(cols: tuple[Column, ...]) -> list[dict[str, Any]]:
    return [c.to_json() for c in cols]


def _columns_from_json(items: list[dict[str, Any]], where: str) -> tuple[Column, ...]:
    return tuple(Column.from_json(d, where) for d in items)


def _merge_columns(a: tuple[Column, ...], b: tuple[Column, ...], where: str) -> tuple[Column, ...]:
    """Columns of ``a`` (in its order) widened by ``b``; columns only ``b`` has are appended."""
    if not a:
        return b
    seen = {c.name: c for c in b}
    out = [replace(c, type=widen(c.type, seen[c.name].type, f"{where} column {c.name!r}"))
           if c.name in seen else c for c in a]
    names = {c.name for c in a}
    return tuple(out + [c for c in b if c.name not in names])


@dataclass(frozen=True, eq=False)
class TableSpec:
    """One child or normal table. Hashable (and equal) by ``(database, name)``."""

    name: str
    columns: tuple[Column, ...]
    database: str | None = None
    stable: str | None = None
    tags: tuple[Column, ...] = ()
    tag_values: tuple[Any, ...] = ()
    precision: str = "ms"

    def __hash__(self) -> int:
        return hash((self.database, self.name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TableSpec) and (self.database, self.name) == (other.database, other.name)

    @cached_property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type.arrow(self.precision)) for c in self.columns])

    @property
    def tag_dict(self) -> dict[str, Any]:
        return dict(zip((t.name for t in self.tags), self.tag_values))

    @property
    def group(self) -> str:
        """What files and export tables group rows by: the super table, or the table itself."""
        return self.stable or self.name

    def replace(self, **changes: Any) -> TableSpec:
        d = {k: getattr(self, k) for k in
             ("name", "columns", "database", "stable", "tags", "tag_values", "precision")}
        d.update(changes)
        return TableSpec(**d)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"database": self.database, "name": self.name, "stable": self.stable}
        if self.stable is None:
            d["columns"] = _columns_json(self.columns)
            d["precision"] = self.precision
        else:
            d["tags"] = {t.name: scalar_to_json(t.type, v) for t, v in zip(self.tags, self.tag_values)}
        return d


@dataclass(frozen=True)
class SuperTable:
    database: str | None
    name: str
    columns: tuple[Column, ...]
    tags: tuple[Column, ...]
    precision: str = "ms"

    def merged(self, spec: TableSpec) -> SuperTable:
        where = f"super table {self.name!r}"
        return SuperTable(self.database, self.name, _merge_columns(self.columns, spec.columns, where),
                          _merge_columns(self.tags, spec.tags, where), self.precision)

    def extended(self, spec: TableSpec) -> SuperTable:
        """Columns and tags ``spec`` adds, keeping the declared types of those already here (a
        table the server defines is not widened by data)."""
        def add(a: tuple[Column, ...], b: tuple[Column, ...]) -> tuple[Column, ...]:
            names = {c.name for c in a}
            return a + tuple(c for c in b if c.name not in names)
        return SuperTable(self.database, self.name, add(self.columns, spec.columns), add(self.tags, spec.tags),
                          self.precision)

    def to_json(self) -> dict[str, Any]:
        return {"database": self.database, "name": self.name, "precision": self.precision,
                "columns": _columns_json(self.columns), "tags": _columns_json(self.tags)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SuperTable:
        where = f"super table {d['name']!r}"
        if not isinstance(d["name"], str) or not isinstance(d.get("database"), (str, type(None))) \
                or d.get("precision", "ms") not in PRECISIONS:
            raise ConfigError(f"{where}: name, database or precision of the wrong kind")
        columns = _columns_from_json(d["columns"], where)
        if not columns or columns[0].type.name != "TIMESTAMP":
            raise ConfigError(f"{where}: its first column must be a TIMESTAMP")
        return cls(d.get("database"), d["name"], columns, _columns_from_json(d["tags"], where),
                   d.get("precision", "ms"))


PRECISIONS = ("ms", "us", "ns")


@dataclass
class Database:
    name: str
    precision: str = "ms"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Catalog:
    databases: dict[str, Database] = field(default_factory=dict)
    stables: dict[tuple[str | None, str], SuperTable] = field(default_factory=dict)
    tables: dict[tuple[str | None, str], TableSpec] = field(default_factory=dict)
    precision: str | None = None  # of timestamps no super table describes (normal tables known only from rows)

    def add_stable(self, st: SuperTable) -> None:
        key = (st.database, st.name)
        old = self.stables.get(key)
        if old is None:
            self.stables[key] = st
        else:
            spec = TableSpec(st.name, st.columns, st.database, st.name, st.tags, (), st.precision)
            self.stables[key] = old.merged(spec)

    def merge(self, other: Catalog) -> None:
        """What a later look at the same source knows: new databases, super tables (widened) and
        tables; a child table's tag values are the later ones."""
        self.databases.update(other.databases)
        self.precision = self.precision or other.precision
        for st in other.stables.values():
            self.add_stable(st)
        for key, spec in other.tables.items():
            if not self.add_table(spec) and spec.stable is not None:
                self.tables[key] = spec

    def add_table(self, spec: TableSpec) -> bool:
        """Record a table seen in the data; True when it is new. Widens its super table."""
        key = (spec.database, spec.name)
        new = key not in self.tables
        if spec.stable is not None:
            skey = (spec.database, spec.stable)
            st = self.stables.get(skey)
            self.stables[skey] = (st.merged(spec) if st else SuperTable(
                spec.database, spec.stable, spec.columns, spec.tags, spec.precision))
            if not new:
                return False
        elif not new:
            old = self.tables[key]
            spec = spec.replace(columns=_merge_columns(old.columns, spec.columns, f"table {spec.name!r}"))
        self.tables[key] = spec
        return new

    def table_from_json(self, d: dict[str, Any]) -> TableSpec:
        """A manifest table entry back to a TableSpec (child tables take their super table's schema)."""
        db, stable = d.get("database"), d.get("stable")
        if not isinstance(db, (str, type(None))) or not isinstance(stable, (str, type(None))) \
                or d.get("precision", "ms") not in PRECISIONS:
            raise ConfigError(f"table entry {str(d)[:200]}: database, stable or precision of the wrong kind")
        if stable is None:
            cols = _columns_from_json(d["columns"], f"table {d['name']!r}")
            return TableSpec(d["name"], cols, db, None, (), (), d.get("precision", "ms"))
        st = self.stables.get((db, stable))
        if st is None:
            raise ConfigError(f"table {d['name']!r} names unknown super table {stable!r}")
        tags = d.get("tags") or {}
        if not isinstance(d["name"], str) or not isinstance(tags, dict):
            raise ConfigError(f"table entry {str(d)[:200]}: 'name' must be text and 'tags' an object")
        values = tuple(scalar_from_json(t.type, tags.get(t.name)) for t in st.tags)
        for t, v in zip(st.tags, values):
            try:
                pa.scalar(v, t.type.arrow(st.precision))
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                raise ConfigError(f"table {d['name']!r}: tag {t.name!r} value {str(v)[:200]!r} is not a {t.type}"
                                  ) from None
        return TableSpec(d["name"], st.columns, db, stable, st.tags, values, st.precision)


@dataclass(frozen=True)
class TableBatch:
    """Rows of one table. ``partition`` names the source partition that produced it and
    ``position`` is where that partition can resume once this batch is durable (None when this
    batch alone is not a consistent point, e.g. not the last table of a CSV chunk)."""

    spec: TableSpec
    data: pa.RecordBatch
    partition: str = ""
    position: Any = None

    @property
    def num_rows(self) -> int:
        return self.data.num_rows

    @cached_property
    def nbytes(self) -> int:
        """The data's size in Arrow, worked out once: the pipeline, sinks and summaries all ask."""
        return self.data.nbytes


def conform(data: pa.RecordBatch | pa.Table, spec: TableSpec) -> pa.RecordBatch:
    """Cast ``data`` to exactly the Arrow schema the spec names (a no-op when it already is)."""
    if isinstance(data, pa.Table):
        data = data.combine_chunks()
        batches = data.to_batches()
        data = batches[0] if len(batches) == 1 else pa.RecordBatch.from_pydict(
            {n: data.column(n).combine_chunks() for n in data.column_names})
    if data.schema.equals(spec.schema):
        return data
    return data.select(spec.schema.names).cast(spec.schema)


def tag_array(col: Column, value: Any, n: int, precision: str) -> pa.Array:
    return pa.repeat(pa.scalar(value, col.type.arrow(precision)), n)


def wide(batch: TableBatch) -> pa.RecordBatch:
    """The batch with ``tbname`` and tag columns in front: the shape export targets store."""
    spec, n = batch.spec, batch.num_rows
    arrays = [pa.repeat(pa.scalar(spec.name, pa.string()), n)]
    names = ["tbname"]
    for col, value in zip(spec.tags, spec.tag_values):
        arrays.append(tag_array(col, value, n, spec.precision))
        names.append(col.name)
    arrays.extend(batch.data.columns)
    names.extend(batch.data.schema.names)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def fit(data: pa.RecordBatch, spec: TableSpec) -> pa.RecordBatch:
    """``data`` with exactly the spec's columns, matched by name, NULL where the data has none (rows
    written before a column was added), then conformed."""
    names = data.schema.names
    if names != spec.schema.names:
        data = pa.RecordBatch.from_arrays(
            [(data.column(f.name) if f.name in names else pa.nulls(data.num_rows, f.type)).cast(f.type)
             for f in spec.schema], schema=spec.schema)
    return conform(data, spec)
