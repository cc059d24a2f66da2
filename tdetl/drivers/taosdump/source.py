"""``taosdump:<dir>`` as a source: a taosdump archive (formats/taosdump.md) into any target, with no
TDengine and no taosdump. Column names and types come from the archive's DDL (its Avro records are
positional); database options, tags and normal tables are kept. Each data file is a partition."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ...capabilities import SourceCapabilities
from ...dsn import Dsn
from ...errors import BackupError, shown
from ...grouping import split_by_table
from ...model import Catalog, Column, SuperTable, TableBatch, conform
from ...options import Options
from ...params import Spec
from ...quality import Rejects
from ...source import SCHEMA_TRAVELS, Source
from . import avro
from .archive import Archive, values

FILES_PER_PART = 256  # data files of one super table read, joined and converted together, up to
BYTES_PER_PART = 8 << 20  # this many bytes of them (compressed: memory stays bounded whatever the archive)


class TaosdumpSource(Source):
    # two readers: Polars decodes Avro outside the GIL, so one reads while the other's rows are written
    capabilities = SourceCapabilities(partitions="files", default_jobs=2, local_files=True)
    quality_defaults = SCHEMA_TRAVELS
    spec = Spec()

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        self.where = dsn.masked()
        self.archive = Archive.open(dsn.path, self.where)
        self._parts: dict[str, tuple[list[Path], str, str | None]] = {}
        by_dir: dict[tuple[Path, str, str | None], list[Path]] = {}
        for path, db, st in self.archive.data_files:
            by_dir.setdefault((path.parent, db, st), []).append(path)
        for (_, db, st), files in by_dir.items():
            chunk: list[Path] = []
            size = 0
            for path in files:
                n = path.stat().st_size
                if chunk and (st is None or len(chunk) == FILES_PER_PART or size + n > BYTES_PER_PART):
                    self._parts[str(chunk[0])] = (chunk, db, st)  # normal tables: a file each, each its columns
                    chunk, size = [], 0
                chunk.append(path)
                size += n
            if chunk:
                self._parts[str(chunk[0])] = (chunk, db, st)

    def catalog(self) -> Catalog:
        return self.archive.catalog

    def partitions(self) -> list[str]:
        return list(self._parts)

    def local_files(self) -> list[Path]:
        return [p for files, _, _ in self._parts.values() for p in files]

    def read(self, partition: str, start: Any = None) -> Iterator[TableBatch]:
        files, db, st_name = self._parts[partition]
        cat = self.archive.catalog
        if st_name is None:
            for path in files:
                yield from self._tables(avro.read(path), path, db, None, partition)
            return
        st = cat.stables.get((db, st_name))
        if st is None:
            raise BackupError(f"{files[0].parent}: rows of super table {shown(st_name)}, which dbs.sql does not define")
        frames = [avro.frame(p) for p in files]
        try:
            joined = pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]
        except pl.exceptions.PolarsError as e:
            raise BackupError(f"{files[0].parent}: data files whose fields differ: {' '.join(str(e).split())[:200]}"
                              ) from None
        yield from self._tables(joined.to_arrow(), files[0].parent, db, st, partition)

    def _tables(self, records: pa.Table, where: Path, db: str, st: SuperTable | None,
                partition: str) -> Iterator[TableBatch]:
        """A file's (or a super table's files') records into per-table batches, typed by the DDL."""
        if records.num_columns < 2 or records.column_names[0] != "tbname":
            raise BackupError(f"{where}: not a taosdump data file (its first field is not tbname)")
        if not records.num_rows:
            return
        batch = records.combine_chunks().to_batches()[0]
        names = batch.column(0)
        if st is not None:  # one conversion for every table of the super table
            batch = self._typed(batch, st.columns, st.precision, where, st.name)
        one = names.null_count == 0 and pc.all(pc.equal(names, names[0])).as_py()  # a file per table, mostly
        for name, rows in [(names[0].as_py(), batch)] if one else split_by_table(batch):
            spec = self.archive.catalog.tables.get((db, name))
            if spec is None:
                raise BackupError(f"{where}: rows of table {shown(name)}, which the archive does not define")
            if spec.stable != (st.name if st is not None else None):
                raise BackupError(f"{where}: table {name!r} is not a child of {st.name if st else 'no super table'}")
            if st is None:
                rows = self._typed(rows, spec.columns, spec.precision, where, name)
            yield TableBatch(spec, conform(rows.drop_columns([rows.schema.names[0]]), spec), partition, None)

    @staticmethod
    def _typed(batch: pa.RecordBatch, columns: tuple[Column, ...], precision: str, where: Path,
               table: str) -> pa.RecordBatch:
        """``tbname`` and the columns as their DDL types them (the records are positional)."""
        if batch.num_columns - 1 != len(columns):
            raise BackupError(f"{where}: table {table!r}: {batch.num_columns - 1} fields, its DDL {len(columns)}"
                              " columns")
        arrays = [batch.column(0), *(values(batch.column(i + 1), c, precision, str(where))
                                     for i, c in enumerate(columns))]
        return pa.RecordBatch.from_arrays(arrays, names=[batch.schema.names[0], *(c.name for c in columns)])
