"""Arrow <-> TDengine raw blocks (the format ``taos_write_raw_block*`` and taosAdapter's binary
write actions take, and ``taos_fetch_raw_block`` returns). The byte work is in
``tdetl/_native/rawblock.pyx``; this module plans each column from the type map, normalises Arrow
input, and names the column and row of anything that cannot be encoded.

    enc = Encoder()
    for block in encode_blocks(batch, spec.columns, "ms", encoder=enc):   # memoryviews
        send(block)                                                          # before the next one
    batch = decode(block_bytes, spec.columns, "ms")
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from ._native import load
from .errors import DataError
from .memo import ByIdentity
from .model import Column, TableSpec
from .types import TDType, type_from_schema

_native: Any = None

DEFAULT_MAX_BYTES = 8 << 20
MAX_BLOB = (4 << 20) - 4
_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _rb() -> Any:
    global _native
    if _native is None:
        _native = load("rawblock")
    return _native


def Encoder(capacity: int = 1 << 16) -> Any:
    """A reusable output buffer for :func:`encode` (one per thread)."""
    return _rb().Encoder(capacity)


def _fields(fields: Sequence[Column] | TableSpec) -> Sequence[Column]:
    return fields.columns if isinstance(fields, TableSpec) else fields


def _kind(t: TDType) -> str:
    if t.name == "TIMESTAMP":
        return "ts"
    if t.name == "BOOL":
        return "bool"
    if t.name == "NCHAR":
        return "nchar"
    if t.name == "BLOB":
        return "var32"
    if t.name in ("VARCHAR", "VARBINARY", "GEOMETRY", "JSON"):
        return "var16"
    if t.name == "DECIMAL" and t.type_id == 21:
        return "dec64"
    if t.name == "NULL":
        return "null"
    return "fixed"


def _target(t: TDType, at: pa.DataType, precision: str) -> pa.DataType:
    """The Arrow type the native loops read for a TDengine column given as ``at``."""
    if t.name == "TIMESTAMP":
        return at if pa.types.is_timestamp(at) or at == pa.int64() else pa.timestamp(t.unit or precision)
    if t.name in ("VARCHAR", "JSON", "NCHAR"):
        ok = (pa.string(), pa.large_string()) if t.name == "NCHAR" else (
            pa.string(), pa.large_string(), pa.binary(), pa.large_binary())
        return at if at in ok else pa.string()
    if t.name in ("VARBINARY", "GEOMETRY", "BLOB"):
        ok = (pa.binary(), pa.large_binary(), pa.string(), pa.large_string())
        return at if at in ok else pa.binary()
    return t.arrow(precision)


def _new_plan(t: TDType, at: pa.DataType, precision: str) -> tuple[pa.DataType | None, Any]:
    """(the type to cast to first, or None; the native plan for arrays of the resulting type)."""
    want = _target(t, at, precision)
    kind = _kind(t)
    mul = div = 1
    if kind == "ts":
        src = want.unit if pa.types.is_timestamp(want) else (t.unit or precision)
        dst = t.unit or precision
        if _NS[src] >= _NS[dst]:
            mul = _NS[src] // _NS[dst]
        else:
            div = _NS[dst] // _NS[src]
    max_len = 0
    if kind == "var32":
        max_len = MAX_BLOB
    elif kind in ("var16", "nchar") and t.name != "JSON":
        max_len = t.length or 0
    plan = _rb().ColumnPlan(_rb().KINDS[kind], t.type_id, t.schema_bytes(), t.fixed_width or 0, max_len, mul,
                            div, want)
    return (None if want == at else want), plan


_PLANS: dict[tuple[TDType, pa.DataType, str], tuple[pa.DataType | None, Any]] = {}


class _BlockPlan:
    """Where each field is in batches of one schema, and how to encode it. Kept per fields object
    (a table's columns) so a batch costs one schema comparison instead of planning every column."""

    __slots__ = ("casts", "columns", "fields", "plans", "schema")

    def __init__(self, fields: Sequence[Column], schema: pa.Schema, precision: str) -> None:
        self.fields, self.schema = fields, schema
        self.columns: list[int] = []
        self.plans: list[Any] = []
        self.casts: list[tuple[int, pa.DataType]] = []  # columns the loops cannot read as given
        for col in fields:
            idx = schema.get_field_index(col.name)
            if idx < 0:
                raise DataError(f"column {col.name!r} is not in the batch (it has {schema.names})")
            at = schema.field(idx).type
            key = (col.type, at, precision)
            entry = _PLANS.get(key)
            if entry is None:
                entry = _PLANS[key] = _new_plan(col.type, at, precision)
            cast, plan = entry
            self.columns.append(idx)
            self.plans.append(plan)
            if cast is not None:
                self.casts.append((idx, cast))

    def cast(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = list(batch.columns)
        for idx, target in self.casts:
            try:
                arrays[idx] = arrays[idx].cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
                name = batch.schema.names[idx]
                col = next(c for c in self.fields if c.name == name)
                raise DataError(f"column {name!r}: cannot encode Arrow {arrays[idx].type} as {col.type}: {e}") from None
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(
            [f.with_type(a.type) for f, a in zip(batch.schema, arrays)]))


_BLOCKS: ByIdentity[_BlockPlan] = ByIdentity()


def _block_plan(fields: Sequence[Column], schema: pa.Schema, precision: str) -> _BlockPlan:
    bp = _BLOCKS.get(fields, precision)
    if bp is None or not schema.equals(bp.schema):
        bp = _BLOCKS.put(fields, _BlockPlan(fields, schema, precision), precision)
    return bp


def as_batch(data: Any) -> pa.RecordBatch:
    """A RecordBatch from a pyarrow batch or anything exporting the Arrow C Data Interface (a Polars
    DataFrame, a DuckDB result): imported without copying when it is one chunk."""
    if isinstance(data, pa.RecordBatch):
        return data
    if hasattr(data, "__arrow_c_array__"):
        return pa.record_batch(data)
    if hasattr(data, "__arrow_c_stream__"):
        table = pa.table(data)
        chunks = table.to_batches()
        return chunks[0] if len(chunks) == 1 else table.combine_chunks().to_batches()[0]
    raise DataError(f"cannot encode a {type(data).__name__}: expected Arrow data (a pyarrow RecordBatch, or an"
                    " object with __arrow_c_array__ or __arrow_c_stream__)")


def _error(code: int, col: Column, row: int, arr: pa.Array, precision: str) -> DataError:
    what = _rb().ERRORS.get(code, str(code))
    if pa.types.is_timestamp(arr.type):
        arr = arr.cast(pa.int64())  # report epochs: out-of-range values have no datetime form
    value = arr[row].as_py() if 0 <= row < len(arr) else None
    shown = repr(value)[:60]
    t = col.type
    if what == "too_long":
        limit = "the 64 KiB value limit" if not t.length else str(t)
        return DataError(f"column {col.name!r} row {row}: value {shown} is longer than {limit}")
    if what == "lossy":
        return DataError(f"column {col.name!r} row {row}: timestamp {shown} is not a whole number of"
                         f" {t.unit or precision} (the target precision)")
    return DataError(f"column {col.name!r} row {row}: value {shown} is out of range for {t}"
                     + (f" at precision {precision}" if t.name == "TIMESTAMP" else ""))


def encode(batch: pa.RecordBatch | Any, fields: Sequence[Column] | TableSpec, precision: str = "ms",
           encoder: Any = None) -> memoryview:
    """One raw block holding ``batch``'s columns named by ``fields`` (in that order); ``batch`` may
    be any Arrow data (see :func:`as_batch`). The result views the encoder's buffer: use it before
    the next call on the same encoder."""
    batch = as_batch(batch)
    cols = _fields(fields)
    bp = _block_plan(cols, batch.schema, precision)
    if bp.casts:
        batch = bp.cast(batch)
    if batch.num_rows == 0:
        raise DataError("a raw block needs at least one row")
    enc = encoder if encoder is not None else Encoder()
    view, code, ci, row = enc.encode(bp.plans, bp.columns, batch)
    if code:
        raise _error(code, cols[ci], row, batch.column(bp.columns[ci]), precision)
    return view


def encode_ranges(batch: pa.RecordBatch, fields: Sequence[Column] | TableSpec, precision: str = "ms",
                  max_bytes: int = DEFAULT_MAX_BYTES, encoder: Any = None,
                  start: int = 0, rows: int | None = None,
                  max_rows: int = 0) -> Iterator[tuple[int, int, memoryview]]:
    """``(first row, row count, block)`` for blocks of at most ``max_bytes`` (and ``max_rows``, if
    set) each; a single row larger than that is sent alone. In row order; each view is valid until
    the next is produced."""
    batch = as_batch(batch)
    enc = encoder if encoder is not None else Encoder()
    total = batch.num_rows - start if rows is None else rows
    step = max_rows if max_rows > 0 else max(total, 1)
    stack = [(s, min(step, start + total - s)) for s in reversed(range(start, start + total, step))]
    while stack:
        first, n = stack.pop()
        view = encode(batch.slice(first, n), fields, precision, enc)
        if len(view) <= max_bytes or n == 1:
            yield first, n, view
            continue
        parts = min(n, -(-len(view) // max_bytes) + 1)
        step = -(-n // parts)
        stack.extend(reversed([(s, min(step, first + n - s)) for s in range(first, first + n, step)]))


def encode_blocks(batch: pa.RecordBatch, fields: Sequence[Column] | TableSpec, precision: str = "ms",
                  max_bytes: int = DEFAULT_MAX_BYTES, encoder: Any = None) -> Iterator[memoryview]:
    """Blocks of at most ``max_bytes`` each, in row order (see :func:`encode_ranges`)."""
    for _, _, view in encode_ranges(batch, fields, precision, max_bytes, encoder):
        yield view


def block_types(block: bytes | memoryview) -> list[TDType]:
    """The column types a block's own schema entries describe."""
    _, _, _, _, schema, _ = _rb().header(block)
    return [type_from_schema(tid, nbytes) for tid, nbytes in schema]


def _area_lengths(cols: int, rows: int, lengths: list[int], schema: list[tuple[int, int]],
                  length: int) -> list[int]:
    """Value-area lengths, little-endian as clients deliver them; big-endian (server wire) only
    when LE does not add up to the block length."""
    meta = sum(4 * rows if type_from_schema(tid, nbytes).is_var else (rows + 7) >> 3 for tid, nbytes in schema)

    def fits(ls: list[int]) -> bool:
        return 28 + 9 * cols + meta + sum(ls) in (length - 1, length)
    if fits(lengths):
        return lengths
    swapped = [int.from_bytes(x.to_bytes(4, "little", signed=True), "big", signed=True) for x in lengths]
    if fits(swapped):
        return swapped
    raise DataError(f"raw block lengths do not add up to its length {length}")


def decode(block: bytes | memoryview | pa.Buffer, fields: Sequence[Column] | TableSpec | None = None,
           precision: str = "ms") -> pa.RecordBatch:
    """A RecordBatch from one raw block. ``fields`` names the columns and states their types (a
    mismatch with the block is an error); without it names are c0..cN and types come from the block."""
    rb = _rb()
    mv = memoryview(block).cast("B") if not isinstance(block, memoryview) else block.cast("B")
    try:
        version, length, rows, cols, schema, lengths = rb.header(mv)
    except ValueError as e:
        raise DataError(f"not a raw block: {e}") from None
    if version not in (1, 2) or length > len(mv) or rows <= 0:
        raise DataError(f"not a raw block (version {version}, length {length}, rows {rows},"
                        f" {len(mv)} bytes given)")
    lengths = _area_lengths(cols, rows, lengths, schema, length)
    given = list(_fields(fields)) if fields is not None else None
    if given is not None and len(given) != cols:
        raise DataError(f"raw block has {cols} columns, fields name {len(given)}")
    arrays, names = [], []
    pos = 28 + 9 * cols
    for i, (tid, nbytes) in enumerate(schema):
        t = type_from_schema(tid, nbytes)
        name = f"c{i}"
        if given is not None:
            name, want = given[i].name, given[i].type
            if want.type_id != tid:
                raise DataError(f"column {name!r}: block holds type id {tid}, field says {want}")
            t = want if want.name != "DECIMAL" else t
        kind = rb.KINDS[_kind(t)] if _kind(t) != "ts" else rb.KINDS["fixed"]
        width = 8 if t.name == "TIMESTAMP" else (t.fixed_width or 0)
        err, bad, nulls, validity, data, offsets, end = rb.decode_column(
            mv[:length], pos, rows, kind, width, lengths[i], pa.allocate_buffer)
        if err:
            raise DataError(f"column {name!r} row {bad}: malformed value in raw block")
        at = t.arrow(precision) if t.name != "BLOB" else pa.binary()
        if t.name == "NULL":
            arr = pa.nulls(rows)
        elif offsets is not None:
            arr = pa.Array.from_buffers(at, rows, [validity, offsets, data], null_count=nulls)
        else:
            arr = pa.Array.from_buffers(at, rows, [validity, data], null_count=nulls)
        arrays.append(arr)
        names.append(name)
        pos = end
    if pos + 1 != length and pos != length:
        raise DataError(f"raw block length {length} does not match its columns ({pos + 1} bytes)")
    return pa.RecordBatch.from_arrays(arrays, names=names)


def decode_all(data: bytes | memoryview, fields: Sequence[Column] | TableSpec | None = None,
               precision: str = "ms") -> Iterator[pa.RecordBatch]:
    """Batches from concatenated blocks (as ``taos_fetch_raw_block`` results are stored)."""
    mv = memoryview(data).cast("B")
    pos = 0
    while pos < len(mv):
        length = int.from_bytes(mv[pos + 4:pos + 8], "little", signed=True)
        if length <= 28 or pos + length > len(mv):
            raise DataError(f"raw block at byte {pos} has bad length {length}")
        yield decode(mv[pos:pos + length], fields, precision)
        pos += length


__all__ = ["DEFAULT_MAX_BYTES", "Encoder", "as_batch", "block_types", "decode", "decode_all", "encode", "encode_blocks",
           "encode_ranges"]
