"""Rows of many tables in one Arrow batch (a super-table query, an export with ``tbname``) split
into per-table batches, vectorised."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def split_by_table(data: pa.RecordBatch) -> list[tuple[str, pa.RecordBatch]]:
    """Rows grouped by the first column (``tbname``), each group in its original order."""
    names = data.column(0)
    if names.null_count:
        data = data.filter(pc.is_valid(names))
        names = data.column(0)
    enc = pc.dictionary_encode(names)
    counts = pc.value_counts(enc.indices).field("counts").to_pylist()  # in first-seen = index order
    ordered = data.take(pc.sort_indices(enc.indices))
    out, pos = [], 0
    for name, n in zip(enc.dictionary.to_pylist(), counts):
        out.append((name, ordered.slice(pos, n)))
        pos += n
    return out
