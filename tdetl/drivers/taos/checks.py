"""The data-quality situations only the target can see (:mod:`tdetl.quality`): rows older than the
database keeps, fields an existing super table lacks, values wider than the target declares. Each
acts on a batch's Arrow columns and returns the batch to write (or None: nothing left)."""

from __future__ import annotations

import math
import re
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ...model import Column, TableBatch, TableSpec
from ...quality import Rejects, too_long, truncate

_KEEP = re.compile(r"\s*(\d+)\s*([mhd]?)\s*")
_MINUTES = {"m": 1, "h": 60, "d": 1440, "": 1440}
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_VAR = ("VARCHAR", "NCHAR", "VARBINARY", "GEOMETRY")


def keep_seconds(keep: str) -> int | None:
    """The retention ``ins_databases.keep`` reports (``3650d,3650d,3650d``; its last value is what
    the server refuses writes beyond), in seconds."""
    m = _KEEP.fullmatch(str(keep).split(",")[-1])
    return int(m.group(1)) * _MINUTES[m.group(2)] * 60 if m else None


def _records(spec: TableSpec, data: pa.RecordBatch, mask: pa.Array) -> list[dict[str, Any]]:
    return [{"table": spec.name, **spec.tag_dict, **row} for row in data.filter(mask).to_pylist()]


def out_of_keep(batch: TableBatch, keep: int, rejects: Rejects, where: str) -> TableBatch | None:
    """ts-out-of-keep: rows whose timestamp is older than now minus the database's keep."""
    ts = batch.data.column(0)
    unit = ts.type.unit if pa.types.is_timestamp(ts.type) else batch.spec.precision
    cutoff = (time.time_ns() // (1_000_000_000 // _PER_SECOND[unit])) - keep * _PER_SECOND[unit]
    oldest = pc.min(ts).cast(pa.int64()).as_py()
    if oldest is None or oldest >= cutoff:  # the common case, in one kernel
        return batch
    old = pc.fill_null(pc.less(ts.cast(pa.int64()), cutoff), False)
    n = pc.sum(old).as_py() or 0
    if not n:
        return batch
    choice = rejects.choice("ts-out-of-keep")
    records = _records(batch.spec, batch.data, old) if choice == "archive" else []
    shown = ts.filter(old)[: len(records) or Rejects.EXAMPLES]  # a reason per archived record, else a few
    reasons = [f"{where}: table {batch.spec.name!r}: timestamp {v} is older than the database keeps"
               f" ({keep // 86400} days)" for v in shown]
    rejects.handle("ts-out-of-keep", choice, reasons, records, count=n, in_sink=True)
    return _kept(batch, pc.invert(old))


def invalid_tag_names(spec: TableSpec) -> list[str]:
    return [t.name for t, v in zip(spec.tags, spec.tag_values)
            if (isinstance(v, float) and not math.isfinite(v)) or (isinstance(v, str) and "\x00" in v)]


def invalid_tags(batch: TableBatch, rejects: Rejects, where: str) -> TableBatch | None:
    """tag-invalid: NaN or infinity in a FLOAT/DOUBLE tag (the server would keep NULL), a NUL in a
    text tag (the server refuses the statement). Per table, not per row: tags are the spec's."""
    spec = batch.spec
    bad = invalid_tag_names(spec)
    if not bad:
        return batch
    choice = rejects.choice("tag-invalid")
    what = ", ".join(f"tag {n!r} = {spec.tag_dict[n]!r}" for n in bad)
    reason = f"{where}: table {spec.name!r}: {what} cannot be kept as it is"
    if choice == "null":
        rejects.handle("tag-invalid", "null", [reason], [], count=batch.num_rows, in_sink=True)
        values = tuple(None if t.name in bad else v for t, v in zip(spec.tags, spec.tag_values))
        return TableBatch(spec.replace(tag_values=values), batch.data, batch.partition, batch.position)
    records = _records(spec, batch.data, pa.nulls(batch.num_rows, pa.bool_()).fill_null(True)) \
        if choice == "archive" else []
    rejects.handle("tag-invalid", choice, [reason] * (len(records) or 1), records, count=batch.num_rows,
                   in_sink=True)
    return None


def extra_fields(batch: TableBatch, columns: tuple[Column, ...], tags: tuple[Column, ...], table: str,
                 rejects: Rejects, where: str) -> TableBatch:
    """field-not-in-stable: columns or tags a table that existed before the run (a super table, or a
    normal table: ``table`` says which) lacks. Never written as they are: the server matches a
    raw block's fields by name and order, so an unknown one shifts the values after it."""
    have = {c.name for c in columns}
    have_tags = {t.name for t in tags}
    cols = [c.name for c in batch.spec.columns if c.name not in have]
    extra_tags = [t.name for t in batch.spec.tags if t.name not in have_tags]
    if not cols and not extra_tags:
        return batch
    choice = rejects.choice("field-not-in-stable")
    what = ", ".join([*(f"column {c!r}" for c in cols), *(f"tag {t!r}" for t in extra_tags)])
    rejects.handle("field-not-in-stable", choice,
                   [f"{where}: table {batch.spec.name!r}: {what} not in {table}"], [],
                   count=batch.num_rows, in_sink=True)
    if choice == "add-column":
        return batch
    keep = [c for c in batch.spec.columns if c.name in have]
    kept_tags = [(t, v) for t, v in zip(batch.spec.tags, batch.spec.tag_values) if t.name in have_tags]
    spec = batch.spec.replace(columns=tuple(keep), tags=tuple(t for t, _ in kept_tags),
                              tag_values=tuple(v for _, v in kept_tags))
    return TableBatch(spec, batch.data.select([c.name for c in keep]), batch.partition, batch.position)


def wider_than(spec: TableSpec, declared: tuple[Column, ...]) -> list[Column]:
    """The target's columns narrower than the batch says its values may be (cheap: types only)."""
    by_name = {c.name: c for c in declared}
    out = []
    for c in spec.columns:
        d = by_name.get(c.name)
        if (d is not None and d.type.name in _VAR and d.type.length is not None
                and (c.type.length is None or c.type.length > d.type.length)):
            out.append(d)
    return out


def too_long_values(batch: TableBatch, narrow: list[Column], rejects: Rejects, where: str) -> TableBatch | None:
    """value-too-long against the target's declared widths: truncate, drop or archive the values
    (widen is done by ALTER before, and error by the codec, which names column and row)."""
    data = batch.data
    masks = []
    for d in narrow:
        assert d.type.length is not None
        arr = data.column(d.name)
        over = too_long(arr, d.type.name, d.type.length)
        if pc.any(over).as_py():
            masks.append((d, over))
    if not masks:
        return batch
    choice = rejects.choice("value-too-long")
    any_over = masks[0][1]
    for _, m in masks[1:]:
        any_over = pc.or_(any_over, m)
    n = pc.sum(any_over).as_py() or 0
    records = _records(batch.spec, data, any_over) if choice in ("archive", "truncate-and-archive") else []
    what = ", ".join(f"column {d.name!r} ({d.type} in the target)" for d, _ in masks)
    reasons = [f"{where}: table {batch.spec.name!r}: a value longer than declared: {what}"] * (
        len(records) or min(n, Rejects.EXAMPLES))
    rejects.handle("value-too-long", choice, reasons, records, count=n, in_sink=True)
    if choice in ("truncate", "truncate-and-archive"):
        for d, _ in masks:
            assert d.type.length is not None
            i = data.schema.get_field_index(d.name)
            data = data.set_column(i, d.name, truncate(data.column(i), d.type.name, d.type.length))
        return TableBatch(batch.spec, data, batch.partition, batch.position)
    return _kept(batch, pc.invert(any_over))


def _kept(batch: TableBatch, keep: pa.Array) -> TableBatch | None:
    data = batch.data.filter(keep)
    return TableBatch(batch.spec, data, batch.partition, batch.position) if data.num_rows else None
