"""``csv:`` as a target. ``csv:<dir>/`` (or an existing directory) writes one file per table
(tag columns then data columns); ``csv:<file>.csv[.gz]`` writes one file with ``tbname`` and tag
columns in front, for tables of one shape. Nulls are empty fields, empty strings are ``""``,
timestamps ISO 8601 UTC at the table's precision, binary values ``\\x`` + hex."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import IO

import polars as pl
import pyarrow as pa

from ...capabilities import SinkCapabilities
from ...dsn import Dsn
from ...errors import SinkError
from ...model import Catalog, TableBatch, wide
from ...options import Options
from ...params import Param, Spec
from ...quality import Rejects
from ..common.files import FileExport, safe_name


def to_text_frame(batch: pa.RecordBatch) -> pl.DataFrame:
    df = pl.from_arrow(batch)
    assert isinstance(df, pl.DataFrame)
    binary = [c for c, t in df.schema.items() if t == pl.Binary]
    if binary:
        df = df.with_columns([(pl.lit("\\x") + pl.col(c).bin.encode("hex")).alias(c) for c in binary])
    return df


class CsvSink(FileExport):
    capabilities = SinkCapabilities(durable_flush=False, local_files=True)  # files renamed into place at close
    spec = Spec(Param("header", "flag", True, "write a header line"),
                Param("delimiter", "text", ",", "field separator"))

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        self.path = dsn.path
        self.per_table = dsn.raw_path.endswith("/") or self.path.is_dir()
        self.header = self.config["header"]
        self.delimiter = self.config["delimiter"] or ","
        self._single: IO[bytes] | None = None
        self._single_schema: pa.Schema | None = None
        self._started: set[Path] = set()

    def prepare(self, catalog: Catalog) -> None:
        if self.per_table:
            self.path.mkdir(parents=True, exist_ok=True)

    def _write(self, fh: IO[bytes], df: pl.DataFrame, header: bool) -> None:
        df.write_csv(fh, include_header=header, separator=self.delimiter, quote_style="necessary")

    def write(self, batch: TableBatch) -> None:
        if self.per_table:
            rb = wide(batch)
            rb = rb.drop_columns(["tbname"])
            final = self.path / f"{safe_name(batch.spec.name)}.csv"
            tmp = self.temp_for(final)
            first = final not in self._started
            self._started.add(final)
            with open(tmp, "ab") as fh:
                self._write(fh, to_text_frame(rb), self.header and first)
            return
        rb = wide(batch)
        if self._single is None:
            tmp = self.temp_for(self.path)
            self._single = gzip.open(tmp, "wb", compresslevel=6) if self.path.suffix == ".gz" \
                else open(tmp, "wb")
            self._single_schema = rb.schema
            header = self.header
        else:
            header = False
            if rb.schema.names != self._single_schema.names:  # type: ignore[union-attr]
                raise SinkError(f"{self.dsn.masked()}: table {batch.spec.name!r} has columns"
                                f" {rb.schema.names}, unlike the file's {self._single_schema.names};"  # type: ignore[union-attr]
                                " export tables of different shapes to a directory (csv:<dir>/)")
        self._write(self._single, to_text_frame(rb), header)

    def close(self) -> None:
        if self._single is not None:
            self._single.close()
            self._single = None
        self.publish()

    def abort(self) -> None:
        if self._single is not None:
            self._single.close()
            self._single = None
        super().abort()
