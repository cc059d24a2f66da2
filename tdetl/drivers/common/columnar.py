"""What the Parquet and ORC sources share: a file, directory or glob of files, each a partition read
in its own row groups (stripes) so memory stays bounded, resumable by rows delivered per file.

A file tdetl exported (``parquet:`` target) says in its schema metadata which super table, tags and
columns it holds, with their declared types: it is read back with no parser. Otherwise ``--parser``
gives the ``model`` (child-table name template, tags, columns) as for CSV, and ``parse`` may retype
columns; without either, each file is one table (``table=``, default the file name) whose first
column must be its timestamp. Columns keep the types the file gives them (no text round trip).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
import pyarrow as pa

from ...dsn import Dsn
from ...errors import ConfigError, DsnError
from ...model import Column, TableBatch
from ...options import Options
from ...params import DATABASE, Param, Spec
from ...quality import Rejects
from ...transform.casts import ROW, Field, FrameCaster
from ...transform.parser import Model, ParserConfig, TableBuilder
from ...types import TDType, type_from_arrow
from .file_source import FileSource

META = b"tdetl.table"  # the export layout: {"stable", "columns", "tags", "precision"}
TBNAME = "tbname"


class ColumnarSource(FileSource):
    suffixes: ClassVar[tuple[str, ...]] = ()
    spec = Spec(Param("table", "text", None, "table name without a parser or tdetl's layout (default: the file"
                                              " name)"), DATABASE)

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        self._readers: dict[str, tuple[FrameCaster, TableBuilder]] = {}
        super().__init__(dsn, options, rejects)

    def wanted(self, path: Path) -> bool:
        return path.suffix.lower() in self.suffixes

    # -- files --------------------------------------------------------------------------------------

    @abstractmethod
    def _schema(self, path: Path) -> pa.Schema:
        """The file's schema with its metadata, without reading data."""

    @abstractmethod
    def _pieces(self, path: Path, skip: int) -> Iterator[pa.RecordBatch]:
        """The file's rows after the first ``skip``, a row group (stripe) or less at a time."""

    def _open_error(self, path: Path, e: Exception) -> DsnError:
        return DsnError(f"{self.dsn.masked()}: {path} is not a readable {self.kind} file: {e}")

    # -- how each file becomes tables ---------------------------------------------------------------

    def _reader(self, path: Path) -> tuple[FrameCaster, TableBuilder]:
        key = str(path)
        if key not in self._readers:
            try:
                schema = self._schema(path)
            except (OSError, pa.ArrowException) as e:
                raise self._open_error(path, e) from None
            self._readers[key] = self._plan(path, schema)
        return self._readers[key]

    def _plan(self, path: Path, schema: pa.Schema) -> tuple[FrameCaster, TableBuilder]:
        where = f"{self.dsn.masked()}: {path.name}"
        meta = (schema.metadata or {}).get(META)
        if self.options.parser is None and meta is not None:
            models, layout = self._layout(meta, where)
            types = {f.name: type_from_arrow(f.type, f"{where}: column {f.name!r}") for f in schema}
            types.update(layout)
            return FrameCaster(()), TableBuilder(models, types, self.database, where, ())
        return plan_tables(schema, self.options.parser, lambda types: self._single(path, schema, types),
                           self.database, where)

    def _single(self, path: Path, schema: pa.Schema, types: dict[str, TDType]) -> Model:
        if not schema.names or types[schema.names[0]].name != "TIMESTAMP":
            raise ConfigError(f"{self.dsn.masked()}: {path.name}: the first column must be the timestamp"
                              f" (it is {schema.names[0] if schema.names else 'missing'!r}); give --parser"
                              " with a model to choose columns")
        return Model(self.config["table"] or path.name.split(".")[0], None, (), tuple(schema.names))

    @staticmethod
    def _layout(meta: bytes, where: str) -> tuple[tuple[Model, ...], dict[str, TDType]]:
        try:
            d = json.loads(meta)
            cols = tuple(Column.from_json(c, where) for c in d["columns"])
            tags = tuple(Column.from_json(t, where) for t in d.get("tags", []))
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{where}: its tdetl.table metadata is malformed ({e})") from None
        unit = d.get("precision", "ms")
        types = {c.name: c.type if c.type.name != "TIMESTAMP" else TDType("TIMESTAMP", unit=unit)
                 for c in (*cols, *tags)}
        model = Model("{" + TBNAME + "}", d.get("stable"), tuple(t.name for t in tags), tuple(c.name for c in cols))
        return (model,), types

    # -- the contract -------------------------------------------------------------------------------

    def builders(self) -> Iterable[TableBuilder]:
        return (self._reader(path)[1] for path in self.files)

    def read(self, partition: str, start: Any = None) -> Iterator[TableBatch]:
        path = Path(partition)
        caster, builder = self._reader(path)
        done = int(start["row"]) if start else 0

        def locate(row: int) -> tuple[str, dict[str, Any]]:
            return f"{path}: row {row + 1}", {"source": str(path), "row": row + 1}

        try:
            for piece in self._pieces(path, done):
                if not piece.num_rows:
                    continue
                frame = numbered(piece, done)
                done += piece.num_rows
                typed = caster.cast(frame, str(path), locate, self.rejects)
                yield from builder.build(typed, self.rejects, locate, partition, {"row": done})
        except (OSError, pa.ArrowException) as e:
            raise self._open_error(path, e) from None


def plan_tables(schema: pa.Schema, parser: ParserConfig | None, single: Callable[[dict[str, TDType]], Model],
                database: str | None, where: str) -> tuple[FrameCaster, TableBuilder]:
    """How typed columns become tables: the parser's fields (retyping columns) and models, or one
    table (``single``) when it gives no model. Shared by every source whose rows arrive typed."""
    types = {f.name: type_from_arrow(f.type, f"{where}: column {f.name!r}") for f in schema}
    fields: tuple[Field, ...] = ()
    if parser is None:
        return FrameCaster(()), TableBuilder((single(types),), types, database, where, ())
    fields = parser.fields
    missing = [f.name for f in fields if f.name not in types]
    if missing:
        raise ConfigError(f"{where}: parser field {missing[0]!r} is not a column (columns: {', '.join(schema.names)})")
    for f in fields:
        types[f.alias] = f.type or types[f.name]
    models = parser.models or (single(types),)
    return FrameCaster(fields), TableBuilder(models, types, database, where, parser.steps)


def numbered(piece: pa.RecordBatch | pa.Table, first: int) -> pl.DataFrame:
    """An Arrow piece as a Polars frame with each row's number from ``first`` (``ROW``): where a row
    came from, for the errors and the archive."""
    frame = pl.from_arrow(piece)
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.int_range(first, first + piece.num_rows, dtype=pl.Int64).alias(ROW))
