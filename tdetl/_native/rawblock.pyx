# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""TDengine raw block <-> Arrow, in C loops with the GIL released.

Layout (shared/spec/rawblock.md §2, checked byte for byte against shared/golden): 28-byte header
(version 1, length, rows, cols, flag 0x80000000, group id 0), cols x (int8 type, int32 bytes),
cols x int32 LE value-area length, then per column either a MSB-first null bitmap (1 = NULL) plus
rows x width values (null slots zeroed), or rows x int32 offsets (-1 = NULL) plus length-prefixed
values (u16, u32 for BLOB; NCHAR as UCS-4 LE), and one trailing zero byte counted in the length.

This module only moves bytes; tdetl/rawblock.py chooses the plan per column from the type map and
turns the error codes returned here into messages naming the column and row. The contract between
the two is rawblock.pxd.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_Resize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from libc.string cimport memcpy, memset, strcmp

KINDS = {"fixed": K_FIXED, "bool": K_BOOL, "ts": K_TS, "var16": K_VAR16, "nchar": K_NCHAR,
         "var32": K_VAR32, "dec64": K_DEC64, "null": K_NULL}
ERRORS = {E_TOO_LONG: "too_long", E_OVERFLOW: "overflow", E_LOSSY: "lossy", E_PREFIX: "prefix",
          E_MALFORMED: "malformed"}

cdef uint8_t TD_FROM_ARROW[256]   # Arrow validity byte (LSB first, 1 = valid) -> TD bitmap byte
cdef uint64_t BOOL_EXPAND[256]    # Arrow value bits -> 8 bytes of 0/1

cdef void _init_tables():
    cdef int b, k
    cdef uint8_t r
    cdef uint64_t e
    for b in range(256):
        r = 0
        e = 0
        for k in range(8):
            if not (b >> k) & 1:
                r |= <uint8_t>(0x80 >> k)
            if (b >> k) & 1:
                e |= (<uint64_t>1) << (8 * k)
        TD_FROM_ARROW[b] = r
        BOOL_EXPAND[b] = e

_init_tables()


cdef inline void st16(uint8_t* p, uint16_t v) noexcept nogil:
    memcpy(p, &v, 2)

cdef inline void st32(uint8_t* p, int32_t v) noexcept nogil:
    memcpy(p, &v, 4)

cdef inline int32_t ld32(const uint8_t* p) noexcept nogil:
    cdef int32_t v
    memcpy(&v, p, 4)
    return v

cdef inline uint16_t ldu16(const uint8_t* p) noexcept nogil:
    cdef uint16_t v
    memcpy(&v, p, 2)
    return v

cdef inline uint32_t ldu32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v

cdef inline bint is_valid(const uint8_t* valid, int64_t i) noexcept nogil:
    return valid == NULL or (valid[i >> 3] >> (i & 7)) & 1

cdef inline int64_t arrow_offset(const uint8_t* offs, int owidth, int64_t i) noexcept nogil:
    if owidth == 4:
        return (<const int32_t*>offs)[i]
    return (<const int64_t*>offs)[i]


# ---- encoding ------------------------------------------------------------------------------------

cdef void bitmap_from_arrow(const uint8_t* valid, int64_t aoff, int64_t n, uint8_t* out) noexcept nogil:
    """TD null bitmap of n rows from an Arrow validity bitmap, a byte at a time."""
    cdef int64_t nbytes = (n + 7) >> 3
    cdef int64_t i, last_in
    cdef int shift = aoff & 7
    cdef const uint8_t* src
    cdef uint8_t b
    if valid == NULL:
        memset(out, 0, nbytes)
        return
    src = valid + (aoff >> 3)
    if shift == 0:
        for i in range(nbytes):
            out[i] = TD_FROM_ARROW[src[i]]
    else:
        last_in = (shift + n - 1) >> 3   # last source byte holding one of our bits
        for i in range(nbytes):
            b = src[i] >> shift
            if i + 1 <= last_in:
                b |= <uint8_t>(src[i + 1] << (8 - shift))
            out[i] = TD_FROM_ARROW[b]
    if n & 7:
        out[nbytes - 1] &= <uint8_t>(0xFF << (8 - (n & 7)))


cdef void zero_null_slots(const uint8_t* bitmap, int64_t n, int width, uint8_t* values) noexcept nogil:
    cdef int64_t i, j
    cdef uint8_t b
    for i in range(0, n, 8):
        b = bitmap[i >> 3]
        if b == 0:
            continue
        for j in range(i, min(i + 8, n)):
            if b & (0x80 >> (j & 7)):
                memset(values + j * width, 0, width)


cdef int64_t var_size(Col* c, int64_t n, int prefix, int64_t* bad) noexcept nogil:
    """Value-area bytes of a variable column; sets *bad to a row that is too long."""
    cdef int64_t i, s, e, k, total = 0, chars
    cdef int64_t limit = 65535 if prefix == 2 else 0xFFFFFFFF
    for i in range(n):
        if not is_valid(c.valid, c.aoff + i):
            continue
        s = arrow_offset(c.offs, c.owidth, c.aoff + i)
        e = arrow_offset(c.offs, c.owidth, c.aoff + i + 1)
        if c.kind == K_NCHAR:
            chars = 0
            for k in range(s, e):
                if (c.data[k] & 0xC0) != 0x80:
                    chars += 1
            if (c.max_len and chars > c.max_len) or 4 * chars > limit:
                bad[0] = i
                return -E_TOO_LONG
            total += prefix + 4 * chars
        else:
            if (c.max_len and e - s > c.max_len) or e - s > limit:
                bad[0] = i
                return -E_TOO_LONG
            total += prefix + (e - s)
    return total


cdef int encode_var(Col* c, int64_t n, uint8_t* out) noexcept nogil:
    """rows x int32 offsets then the length-prefixed values."""
    cdef uint8_t* data = out + 4 * n
    cdef int64_t i, s, e, k, pos = 0
    cdef uint32_t cp
    cdef uint8_t ch
    cdef uint8_t* p
    cdef int prefix = 4 if c.kind == K_VAR32 else 2
    for i in range(n):
        if not is_valid(c.valid, c.aoff + i):
            st32(out + 4 * i, -1)
            continue
        st32(out + 4 * i, <int32_t>pos)
        s = arrow_offset(c.offs, c.owidth, c.aoff + i)
        e = arrow_offset(c.offs, c.owidth, c.aoff + i + 1)
        p = data + pos + prefix
        if c.kind == K_NCHAR:
            k = s
            while k < e:
                ch = c.data[k]
                if ch < 0x80:
                    cp = ch
                    k += 1
                elif ch < 0xE0:
                    cp = ((ch & 0x1F) << 6) | (c.data[k + 1] & 0x3F)
                    k += 2
                elif ch < 0xF0:
                    cp = ((ch & 0x0F) << 12) | ((c.data[k + 1] & 0x3F) << 6) | (c.data[k + 2] & 0x3F)
                    k += 3
                else:
                    cp = (((ch & 0x07) << 18) | ((c.data[k + 1] & 0x3F) << 12)
                          | ((c.data[k + 2] & 0x3F) << 6) | (c.data[k + 3] & 0x3F))
                    k += 4
                memcpy(p, &cp, 4)
                p += 4
            st16(data + pos, <uint16_t>(p - (data + pos + 2)))
        else:
            if prefix == 2:
                st16(data + pos, <uint16_t>(e - s))
            else:
                st32(data + pos, <int32_t>(e - s))
            memcpy(p, c.data + s, e - s)
            p += e - s
        pos = p - data
    return 0


cdef int encode_fixed(Col* c, int64_t n, uint8_t* out, int64_t* bad) noexcept nogil:
    """Bitmap then values; returns an error code with *bad = row."""
    cdef int64_t nb = (n + 7) >> 3
    cdef uint8_t* bitmap = out
    cdef uint8_t* values = out + nb
    cdef int64_t i, full, v, lo, hi
    cdef const int64_t* src64
    cdef int64_t maxv = 0x7FFFFFFFFFFFFFFF
    bitmap_from_arrow(c.valid, c.aoff, n, bitmap)
    if c.kind == K_NULL:
        memset(bitmap, 0xFF, nb)
        if n & 7:
            bitmap[nb - 1] &= <uint8_t>(0xFF << (8 - (n & 7)))
        return 0
    if c.kind == K_FIXED or (c.kind == K_TS and c.mul == 1 and c.div == 1):
        memcpy(values, c.data + c.aoff * c.width, n * c.width)
    elif c.kind == K_TS:
        src64 = <const int64_t*>c.data + c.aoff
        for i in range(n):
            if not is_valid(c.valid, c.aoff + i):
                v = 0
            else:
                v = src64[i]
                if c.mul > 1:
                    if v > maxv // c.mul or v < -(maxv // c.mul):
                        bad[0] = i
                        return E_OVERFLOW
                    v = v * c.mul
                elif c.div > 1:
                    if v % c.div != 0:
                        bad[0] = i
                        return E_LOSSY
                    v = v // c.div
            memcpy(values + 8 * i, &v, 8)
    elif c.kind == K_DEC64:
        for i in range(n):
            memcpy(&lo, c.data + 16 * (c.aoff + i), 8)
            memcpy(&hi, c.data + 16 * (c.aoff + i) + 8, 8)
            if is_valid(c.valid, c.aoff + i) and hi != (lo >> 63):
                bad[0] = i
                return E_OVERFLOW
            memcpy(values + 8 * i, &lo, 8)
    elif c.kind == K_BOOL:
        if (c.aoff & 7) == 0:
            full = n >> 3
            for i in range(full):
                memcpy(values + 8 * i, &BOOL_EXPAND[c.data[(c.aoff >> 3) + i]], 8)
            for i in range(full * 8, n):
                values[i] = (c.data[(c.aoff + i) >> 3] >> ((c.aoff + i) & 7)) & 1
        else:
            for i in range(n):
                values[i] = (c.data[(c.aoff + i) >> 3] >> ((c.aoff + i) & 7)) & 1
    if c.nulls:
        zero_null_slots(bitmap, n, c.width, values)
    return 0


cdef class ColumnPlan:
    def __init__(self, int kind, int type_id, int schema_bytes, int width, int64_t max_len, int64_t mul,
                 int64_t div, arrow_type):
        """``arrow_type``: the type arrays of this column have (anything with ``__arrow_c_schema__``)."""
        capsule = arrow_type.__arrow_c_schema__()  # owns the exported schema while we read it
        cdef ArrowSchema* sch = <ArrowSchema*>PyCapsule_GetPointer(capsule, "arrow_schema")
        self.kind, self.type_id, self.schema_bytes, self.width = kind, type_id, schema_bytes, width
        self.max_len, self.mul, self.div = max_len, mul, div
        self.format = sch.format
        self.owidth = 8 if self.format in (b"U", b"Z") else 4


cdef class Encoder:
    """Encodes batches into one output buffer that is reused from call to call (fresh memory is
    expensive here): the memoryview a call returns is valid until the next call."""

    def __init__(self, int64_t capacity=1 << 16):
        self.buf = bytearray(capacity)
        self.capacity = capacity

    cdef uint8_t* _reserve(self, int64_t size) except NULL:
        if size > self.capacity:
            self.capacity = max(size, self.capacity * 2)
            PyByteArray_Resize(self.buf, self.capacity)
        return <uint8_t*>PyByteArray_AS_STRING(self.buf)

    def encode(self, list plans, list columns, batch):
        """One block of ``batch`` (anything whose ``__arrow_c_array__`` exports a struct array, such
        as a RecordBatch): its child ``columns[i]`` encoded by ``plans[i]``. Returns (memoryview, 0,
        0, 0) or (None, error code, column, row); a child whose Arrow type is not the plan's raises
        TypeError."""
        cdef int ncols = len(plans)
        cdef Col* cs
        cdef ColumnPlan plan
        cdef ArrowSchema* top_schema
        cdef ArrowSchema* sch
        cdef ArrowArray* top
        cdef ArrowArray* arr
        cdef int64_t rows, total = 29 + 9 * ncols
        cdef int64_t bad = -1, size, meta
        cdef int i, idx, err = 0
        cdef uint8_t* out
        cdef uint8_t* p
        cdef int32_t hdr[4]
        cdef uint32_t flag = 0x80000000
        cdef uint64_t group = 0
        if len(columns) != ncols:
            raise TypeError(f"{len(columns)} columns for {ncols} plans")
        keep = batch.__arrow_c_array__()  # owns the exported batch until we return
        top_schema = <ArrowSchema*>PyCapsule_GetPointer(keep[0], "arrow_schema")
        top = <ArrowArray*>PyCapsule_GetPointer(keep[1], "arrow_array")
        if strcmp(top_schema.format, b"+s") != 0:
            raise TypeError(f"expected a struct array (a record batch), got Arrow format {top_schema.format!r}")
        rows = top.length
        cs = <Col*>PyMem_Malloc(sizeof(Col) * max(ncols, 1))
        if cs == NULL:
            raise MemoryError()
        try:
            for i in range(ncols):
                plan = <ColumnPlan?>plans[i]
                idx = columns[i]
                if idx < 0 or idx >= top.n_children:
                    raise TypeError(f"column {i}: no child {idx} in a batch of {top.n_children} columns")
                sch = top_schema.children[idx]
                arr = top.children[idx]
                if strcmp(sch.format, plan.format) != 0:
                    raise TypeError(f"column {i}: Arrow format {sch.format!r} is not the plan's {plan.format!r}")
                if arr.length < top.offset + rows:
                    raise TypeError(f"column {i}: {arr.length} rows, the batch has {top.offset + rows}")
                cs[i].kind = plan.kind
                cs[i].width = plan.width
                cs[i].max_len = plan.max_len
                cs[i].mul = plan.mul
                cs[i].div = plan.div
                cs[i].owidth = plan.owidth
                cs[i].aoff = top.offset + arr.offset
                cs[i].nulls = arr.null_count  # -1 (not computed) counts as "may have nulls"
                cs[i].valid = NULL
                cs[i].data = NULL
                cs[i].offs = NULL
                if plan.kind == K_NULL:
                    continue
                if arr.null_count != 0:
                    cs[i].valid = <const uint8_t*>arr.buffers[0]
                if plan.kind == K_VAR16 or plan.kind == K_NCHAR or plan.kind == K_VAR32:
                    cs[i].offs = <const uint8_t*>arr.buffers[1]
                    cs[i].data = <const uint8_t*>arr.buffers[2]
                else:
                    cs[i].data = <const uint8_t*>arr.buffers[1]
            with nogil:
                for i in range(ncols):
                    if cs[i].kind == K_VAR16 or cs[i].kind == K_NCHAR or cs[i].kind == K_VAR32:
                        size = var_size(&cs[i], rows, 4 if cs[i].kind == K_VAR32 else 2, &bad)
                        if size < 0:
                            err = <int>(-size)
                            break
                        cs[i].length = size
                        total += 4 * rows + size
                    else:
                        cs[i].length = 0 if cs[i].kind == K_NULL else rows * cs[i].width
                        total += ((rows + 7) >> 3) + cs[i].length
            if err:
                return None, err, i, bad
            out = self._reserve(total)
            hdr[0] = 1
            hdr[1] = <int32_t>total
            hdr[2] = <int32_t>rows
            hdr[3] = ncols
            memcpy(out, hdr, 16)
            memcpy(out + 16, &flag, 4)
            memcpy(out + 20, &group, 8)
            for i in range(ncols):
                plan = <ColumnPlan>plans[i]
                out[28 + 5 * i] = <uint8_t>(<int8_t>plan.type_id)
                st32(out + 29 + 5 * i, <int32_t>plan.schema_bytes)
                st32(out + 28 + 5 * ncols + 4 * i, <int32_t>cs[i].length)
            with nogil:
                p = out + 28 + 9 * ncols
                for i in range(ncols):
                    if cs[i].kind == K_VAR16 or cs[i].kind == K_NCHAR or cs[i].kind == K_VAR32:
                        encode_var(&cs[i], rows, p)
                        p += 4 * rows + cs[i].length
                    else:
                        err = encode_fixed(&cs[i], rows, p, &bad)
                        if err:
                            break
                        p += ((rows + 7) >> 3) + cs[i].length
                if not err:
                    p[0] = 0
            if err:
                return None, err, i, bad
            return memoryview(self.buf)[:total], 0, 0, 0
        finally:
            PyMem_Free(cs)


# ---- decoding ------------------------------------------------------------------------------------

def header(const uint8_t[::1] block):
    """(version, length, rows, cols, [(type id, schema bytes)...], [value-area lengths...])."""
    cdef int64_t size = block.shape[0]
    if size < 28:
        raise ValueError(f"a raw block is at least 28 bytes, got {size}")
    cdef const uint8_t* b = &block[0]
    cdef int32_t version = ld32(b), length = ld32(b + 4), rows = ld32(b + 8), cols = ld32(b + 12)
    if cols < 0 or rows < 0 or 28 + 9 * <int64_t>cols > size:
        raise ValueError(f"raw block header is malformed (rows {rows}, cols {cols}, {size} bytes)")
    schema = [(<int8_t>b[28 + 5 * i], ld32(b + 29 + 5 * i)) for i in range(cols)]
    lengths = [ld32(b + 28 + 5 * cols + 4 * i) for i in range(cols)]
    return version, length, rows, cols, schema, lengths


cdef int decode_var(const uint8_t* meta, const uint8_t* area, int64_t area_len, int64_t n, int kind,
                    uint8_t* validity, int32_t* offsets, uint8_t* out, int64_t* need,
                    int64_t* nulls, int64_t* bad) noexcept nogil:
    """Two modes: out == NULL sizes the Arrow data (and fills validity); else writes it."""
    cdef int64_t i, pos = 0, L, total = 0
    cdef int32_t o
    cdef int prefix = 4 if kind == K_VAR32 else 2
    cdef uint32_t cp
    cdef const uint8_t* src
    cdef int64_t k
    for i in range(n):
        o = ld32(meta + 4 * i)
        if o < 0:
            if out == NULL:
                validity[i >> 3] &= <uint8_t>~(1 << (i & 7))
                nulls[0] += 1
            if offsets != NULL:
                offsets[i + 1] = <int32_t>pos
            continue
        if o + prefix > area_len:
            bad[0] = i
            return E_MALFORMED
        L = ldu32(area + o) if prefix == 4 else ldu16(area + o)
        if o + prefix + L > area_len:
            bad[0] = i
            return E_MALFORMED
        src = area + o + prefix
        if kind == K_NCHAR:
            if L & 3:
                bad[0] = i
                return E_MALFORMED
            for k in range(0, L, 4):
                memcpy(&cp, src + k, 4)
                if out == NULL:
                    total += 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
                elif cp < 0x80:
                    out[pos] = <uint8_t>cp
                    pos += 1
                elif cp < 0x800:
                    out[pos] = <uint8_t>(0xC0 | (cp >> 6))
                    out[pos + 1] = <uint8_t>(0x80 | (cp & 0x3F))
                    pos += 2
                elif cp < 0x10000:
                    out[pos] = <uint8_t>(0xE0 | (cp >> 12))
                    out[pos + 1] = <uint8_t>(0x80 | ((cp >> 6) & 0x3F))
                    out[pos + 2] = <uint8_t>(0x80 | (cp & 0x3F))
                    pos += 3
                else:
                    out[pos] = <uint8_t>(0xF0 | (cp >> 18))
                    out[pos + 1] = <uint8_t>(0x80 | ((cp >> 12) & 0x3F))
                    out[pos + 2] = <uint8_t>(0x80 | ((cp >> 6) & 0x3F))
                    out[pos + 3] = <uint8_t>(0x80 | (cp & 0x3F))
                    pos += 4
        elif out == NULL:
            total += L
        else:
            memcpy(out + pos, src, L)
            pos += L
        if offsets != NULL:
            offsets[i + 1] = <int32_t>pos
    if out == NULL:
        need[0] = total
    return 0


def decode_column(const uint8_t[::1] block, int64_t start, int64_t rows, int kind, int width,
                  int64_t area_len, object alloc):
    """One column's Arrow buffers from the block region at ``start``. Returns
    (error, bad row, null count, validity buffer or None, data buffer, offsets buffer or None, end)."""
    cdef const uint8_t* base = &block[0] + start
    cdef int64_t nb = (rows + 7) >> 3, i, j, nulls = 0, bad = -1, need = 0
    cdef int err = 0
    cdef const uint8_t* bm
    cdef const uint8_t* vals
    cdef uint8_t* v
    cdef uint8_t* d
    cdef int32_t* offs
    cdef int64_t lo, hi
    cdef uint8_t acc
    validity = alloc(nb) if rows else None
    v = <uint8_t*><uintptr_t>validity.address if validity is not None else NULL
    if kind == K_VAR16 or kind == K_NCHAR or kind == K_VAR32:
        if v != NULL:
            memset(v, 0xFF, nb)
        offsets = alloc(4 * (rows + 1))
        offs = <int32_t*><uintptr_t>offsets.address
        offs[0] = 0
        with nogil:
            err = decode_var(base, base + 4 * rows, area_len, rows, kind, v, NULL, NULL, &need, &nulls, &bad)
        if err:
            return err, bad, 0, None, None, None, 0
        data = alloc(max(need, 1))
        d = <uint8_t*><uintptr_t>data.address
        with nogil:
            err = decode_var(base, base + 4 * rows, area_len, rows, kind, v, offs, d, &need, &nulls, &bad)
        return err, bad, nulls, (validity if nulls else None), data, offsets, start + 4 * rows + area_len
    bm = base
    vals = base + nb
    with nogil:
        for i in range(nb):
            if v != NULL:
                v[i] = TD_FROM_ARROW[bm[i]]
            acc = bm[i]
            while acc:
                nulls += acc & 1
                acc >>= 1
        if rows & 7 and v != NULL:
            v[nb - 1] &= <uint8_t>((1 << (rows & 7)) - 1)
            # bits past the last row of a TD bitmap are 0, which counted as "not null" above
    if kind == K_NULL:
        return 0, -1, rows, None, None, None, start + nb
    if kind == K_BOOL:
        data = alloc(max(nb, 1))
        d = <uint8_t*><uintptr_t>data.address
        with nogil:
            for i in range(nb):
                acc = 0
                for j in range(8):
                    if i * 8 + j < rows and vals[i * 8 + j]:
                        acc |= <uint8_t>(1 << j)
                d[i] = acc
    elif kind == K_DEC64:
        data = alloc(max(16 * rows, 1))
        d = <uint8_t*><uintptr_t>data.address
        with nogil:
            for i in range(rows):
                memcpy(&lo, vals + 8 * i, 8)
                hi = lo >> 63
                memcpy(d + 16 * i, &lo, 8)
                memcpy(d + 16 * i + 8, &hi, 8)
    else:
        data = alloc(max(width * rows, 1))
        d = <uint8_t*><uintptr_t>data.address
        with nogil:
            memcpy(d, vals, width * rows)
    return 0, -1, nulls, (validity if nulls else None), data, None, start + nb + area_len
