"""``orc:<file|dir|glob>`` as a source: stripe by stripe (tdetl/drivers/common/columnar.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.orc as orc

from ...capabilities import SourceCapabilities
from ..common.columnar import ColumnarSource


class OrcSource(ColumnarSource):
    capabilities = SourceCapabilities(parser=True, partitions="files", local_files=True)
    suffixes = (".orc",)
    kind = "ORC"

    def _schema(self, path: Path) -> pa.Schema:
        return orc.ORCFile(str(path)).schema

    def _pieces(self, path: Path, skip: int) -> Iterator[pa.RecordBatch]:
        f = orc.ORCFile(str(path))
        seen = 0
        for i in range(f.nstripes):
            stripe = f.read_stripe(i)
            if seen + stripe.num_rows <= skip:
                seen += stripe.num_rows
                continue
            if seen < skip:
                stripe = stripe.slice(skip - seen)
                seen = skip
            seen += stripe.num_rows
            rows = self.options.batch_rows
            for start in range(0, stripe.num_rows, rows):
                yield stripe.slice(start, rows)
