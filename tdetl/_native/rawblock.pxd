# The contract between tdetl/rawblock.py and the byte loops in rawblock.pyx: typed column plans
# built once per column and Arrow type, and arrays handed over through the Arrow C Data Interface
# (https://arrow.apache.org/docs/format/CDataInterface.html), checked against the plan's format.

from libc.stdint cimport int64_t, uint8_t

cdef enum:
    # column kinds
    K_FIXED = 0    # width-byte values, straight copy
    K_BOOL = 1     # Arrow bits <-> one byte per value
    K_TS = 2       # int64 with a precision change (multiply, or exact divide)
    K_VAR16 = 3    # u16 length prefix + bytes (VARCHAR, VARBINARY, GEOMETRY, JSON)
    K_NCHAR = 4    # u16 length prefix + UCS-4 LE (UTF-8 in Arrow)
    K_VAR32 = 5    # u32 length prefix + bytes (BLOB)
    K_DEC64 = 6    # Arrow decimal128 <-> 8-byte unscaled int64
    K_NULL = 7     # TDengine NULL type: bitmap only
    # error codes returned by the loops (row is reported alongside)
    E_TOO_LONG = 1
    E_OVERFLOW = 2
    E_LOSSY = 3
    E_PREFIX = 4
    E_MALFORMED = 5


cdef extern from *:
    """
    #ifndef ARROW_C_DATA_INTERFACE
    #define ARROW_C_DATA_INTERFACE
    struct ArrowSchema {
      const char* format; const char* name; const char* metadata; int64_t flags; int64_t n_children;
      struct ArrowSchema** children; struct ArrowSchema* dictionary;
      void (*release)(struct ArrowSchema*); void* private_data;
    };
    struct ArrowArray {
      int64_t length; int64_t null_count; int64_t offset; int64_t n_buffers; int64_t n_children;
      const void** buffers; struct ArrowArray** children; struct ArrowArray* dictionary;
      void (*release)(struct ArrowArray*); void* private_data;
    };
    #endif
    """
    struct ArrowSchema:
        const char* format
        int64_t n_children
        ArrowSchema** children
    struct ArrowArray:
        int64_t length
        int64_t null_count
        int64_t offset
        int64_t n_buffers
        int64_t n_children
        const void** buffers
        ArrowArray** children


cdef struct Col:
    int kind
    int width          # fixed width in the block (K_FIXED, K_TS 8, K_DEC64 8)
    int64_t max_len    # K_VAR*: max payload bytes; K_NCHAR: max characters; 0 = no check
    int64_t mul        # K_TS
    int64_t div        # K_TS
    const uint8_t* valid
    const uint8_t* data
    const uint8_t* offs
    int owidth         # Arrow offset width: 4, or 8 for large_string/large_binary
    int64_t aoff       # Arrow array offset (rows)
    int64_t nulls
    int64_t length     # value-area bytes (filled by the size pass)


cdef class ColumnPlan:
    """How one column is encoded: what the type map decided, for one Arrow type."""
    cdef readonly int kind
    cdef readonly int type_id
    cdef readonly int schema_bytes
    cdef readonly int width
    cdef readonly int64_t max_len
    cdef readonly int64_t mul
    cdef readonly int64_t div
    cdef readonly bytes format    # the Arrow format string arrays must have ("f", "tsm:", "u", ...)
    cdef int owidth


cdef class Encoder:
    cdef bytearray buf
    cdef public int64_t capacity
    cdef uint8_t* _reserve(self, int64_t size) except NULL
