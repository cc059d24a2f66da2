"""``parquet:<dir>`` as a target: one Parquet file per super table (or normal table) with
``tbname`` and tag columns in front, and the table's TDengine layout in the schema metadata (so
``parquet:`` reads it back equal). Param ``compression`` (zstd, snappy, lz4, gzip, none)."""

from __future__ import annotations

import json
from typing import Any

import pyarrow.parquet as pq

from ...capabilities import SinkCapabilities
from ...dsn import Dsn
from ...errors import SinkError
from ...model import Catalog, TableBatch, TableSpec, wide
from ...options import Options
from ...params import Param, Spec
from ...quality import Rejects
from ..common.columnar import META
from ..common.files import FileExport, safe_name


def _layout(spec: TableSpec) -> bytes:
    """What the parquet: source needs to read the file back as it was: which columns are tags, and
    the declared TDengine types (Arrow alone says neither NCHAR nor widths)."""
    return json.dumps({"stable": spec.stable, "precision": spec.precision,
                       "columns": [c.to_json() for c in spec.columns],
                       "tags": [t.to_json() for t in spec.tags]}).encode()


class ParquetSink(FileExport):
    capabilities = SinkCapabilities(durable_flush=False, local_files=True)  # files renamed into place at close
    spec = Spec(Param("compression", "choice", "zstd", "Parquet compression",
                      choices=("zstd", "snappy", "lz4", "gzip", "none")))

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        self.root = dsn.path
        self.compression = self.config["compression"]
        self._writers: dict[Any, pq.ParquetWriter] = {}

    def prepare(self, catalog: Catalog) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise SinkError(f"{self.dsn.masked()}: {self.root} is a file; parquet: takes a directory")
        self.root.mkdir(parents=True, exist_ok=True)

    def write(self, batch: TableBatch) -> None:
        rb = wide(batch)
        key = (batch.spec.database, batch.spec.group)
        w = self._writers.get(key)
        if w is None:
            tmp = self.temp_for(self.root / f"{safe_name(batch.spec.group)}.parquet")
            w = pq.ParquetWriter(tmp, rb.schema.with_metadata({META: _layout(batch.spec)}),
                                 compression=self.compression)
            self._writers[key] = w
        elif not rb.schema.equals(w.schema):
            raise SinkError(f"{self.dsn.masked()}: table {batch.spec.name!r} does not match the"
                            f" columns of {batch.spec.group!r}: {rb.schema.names}")
        w.write_batch(rb)

    def _close_writers(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()

    def close(self) -> None:
        self._close_writers()
        self.publish()

    def abort(self) -> None:
        self._close_writers()
        super().abort()
