"""``parquet:<file|dir|glob>`` as a source: row group by row group (tdetl/drivers/common/columnar.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ...capabilities import SourceCapabilities
from ..common.columnar import ColumnarSource


class ParquetSource(ColumnarSource):
    capabilities = SourceCapabilities(parser=True, partitions="files", local_files=True)
    suffixes = (".parquet", ".pq")
    kind = "Parquet"

    def _schema(self, path: Path) -> pa.Schema:
        return pq.read_schema(path)

    def _pieces(self, path: Path, skip: int) -> Iterator[pa.RecordBatch]:
        f = pq.ParquetFile(path)
        meta, first, seen = f.metadata, 0, 0
        while first < meta.num_row_groups and seen + meta.row_group(first).num_rows <= skip:
            seen += meta.row_group(first).num_rows
            first += 1
        rows = self.options.batch_rows
        for batch in f.iter_batches(batch_size=rows, row_groups=range(first, meta.num_row_groups)):
            if seen < skip:  # resuming inside a row group
                cut = min(skip - seen, batch.num_rows)
                seen += cut
                batch = batch.slice(cut)
            yield batch
