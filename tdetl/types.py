"""The one map between TDengine 3 types and Arrow types, and the parser for type strings.

A :class:`TDType` keeps what Arrow cannot: VARCHAR vs NCHAR vs JSON (all utf8 in Arrow), declared
widths, GEOMETRY vs VARBINARY (both binary), and DECIMAL's precision/scale as TDengine declares them.
Timestamps map to ``timestamp[unit]`` with no timezone: values are UTC epochs in the database
precision, exactly as TDengine stores them.
"""

from __future__ import annotations

import base64
import decimal
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .errors import ConfigError, shown

PRECISIONS = ("ms", "us", "ns")

# name -> (type id, fixed width in a raw block or None for variable types)
_INFO: dict[str, tuple[int, int | None]] = {
    "NULL": (0, 0), "BOOL": (1, 1), "TINYINT": (2, 1), "SMALLINT": (3, 2), "INT": (4, 4),
    "BIGINT": (5, 8), "FLOAT": (6, 4), "DOUBLE": (7, 8), "VARCHAR": (8, None), "TIMESTAMP": (9, 8),
    "NCHAR": (10, None), "TINYINT UNSIGNED": (11, 1), "SMALLINT UNSIGNED": (12, 2),
    "INT UNSIGNED": (13, 4), "BIGINT UNSIGNED": (14, 8), "JSON": (15, None), "VARBINARY": (16, None),
    "DECIMAL": (17, 16), "BLOB": (18, None), "GEOMETRY": (20, None),
}
_BY_ID = {tid: name for name, (tid, _) in _INFO.items()}
_BY_ID[21] = "DECIMAL"  # DECIMAL64: same SQL type, 8-byte storage when precision <= 18

_ARROW_FIXED: dict[str, pa.DataType] = {
    "NULL": pa.null(), "BOOL": pa.bool_(), "TINYINT": pa.int8(), "SMALLINT": pa.int16(),
    "INT": pa.int32(), "BIGINT": pa.int64(), "TINYINT UNSIGNED": pa.uint8(),
    "SMALLINT UNSIGNED": pa.uint16(), "INT UNSIGNED": pa.uint32(), "BIGINT UNSIGNED": pa.uint64(),
    "FLOAT": pa.float32(), "DOUBLE": pa.float64(), "VARCHAR": pa.string(), "NCHAR": pa.string(),
    "JSON": pa.string(), "VARBINARY": pa.binary(), "GEOMETRY": pa.binary(), "BLOB": pa.binary(),
}

_ALIASES = {
    "BOOLEAN": "BOOL", "INTEGER": "INT", "BINARY": "VARCHAR", "STRING": "VARCHAR", "TEXT": "VARCHAR",
    "UTINYINT": "TINYINT UNSIGNED", "USMALLINT": "SMALLINT UNSIGNED", "UINT": "INT UNSIGNED",
    "UBIGINT": "BIGINT UNSIGNED", "UNSIGNED TINYINT": "TINYINT UNSIGNED",
    "UNSIGNED SMALLINT": "SMALLINT UNSIGNED", "UNSIGNED INT": "INT UNSIGNED",
    "UNSIGNED BIGINT": "BIGINT UNSIGNED", "INT8": "TINYINT", "INT16": "SMALLINT", "INT32": "INT",
    "INT64": "BIGINT", "UINT8": "TINYINT UNSIGNED", "UINT16": "SMALLINT UNSIGNED",
    "UINT32": "INT UNSIGNED", "UINT64": "BIGINT UNSIGNED", "FLOAT32": "FLOAT", "FLOAT64": "DOUBLE",
    "DECIMAL64": "DECIMAL", "NUMERIC": "DECIMAL", "MEDIUMBLOB": "BLOB",
}
_SIZED = {"VARCHAR", "NCHAR", "VARBINARY", "GEOMETRY"}
_TYPE_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 _]*?)\s*(?:\(\s*([^)]*?)\s*\))?\s*$")
MAX_VAR_LEN = 65517  # longest VARCHAR/VARBINARY/GEOMETRY data column TDengine accepts
MAX_NCHAR_LEN = 16379


@dataclass(frozen=True)
class TDType:
    """A TDengine column type. ``length`` is the declared n of VARCHAR/NCHAR/VARBINARY/GEOMETRY
    (None = not declared yet: sized from the data); ``unit`` is a TIMESTAMP's precision when a
    config names one (``TIMESTAMP(ms)``), otherwise the table's precision applies."""

    name: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    unit: str | None = None

    @property
    def type_id(self) -> int:
        if self.name == "DECIMAL" and (self.precision or 0) <= 18:
            return 21
        return _INFO[self.name][0]

    @property
    def fixed_width(self) -> int | None:
        if self.name == "DECIMAL":
            return 8 if self.type_id == 21 else 16
        return _INFO[self.name][1]

    @property
    def is_var(self) -> bool:
        return self.fixed_width is None

    @property
    def is_string(self) -> bool:
        return self.name in ("VARCHAR", "NCHAR", "JSON")

    def schema_bytes(self) -> int:
        """The ``bytes`` a raw block's schema entry carries for this type."""
        if self.name == "DECIMAL":
            width = self.fixed_width or 16
            return (width << 24) | ((self.precision or 0) << 8) | (self.scale or 0)
        if self.fixed_width is not None:
            return self.fixed_width
        if self.name == "JSON":
            return 16384
        if self.name == "BLOB":
            return 5  # what a 3.3.7.5 server puts in the block (shared/golden/blob.block)
        n = self.length or 0
        if self.name == "NCHAR":
            return 4 * n + 2
        return n + 2

    def field_bytes(self) -> int:
        """``bytes`` as ``taos_fetch_fields`` and TAOS_FIELD carry it: the declared length of
        strings (characters for NCHAR), the storage width of fixed types and decimals."""
        if self.name in _SIZED:
            return self.length or 0
        if self.name == "JSON":
            return 4095
        if self.name == "BLOB":
            return 4 << 20
        return self.fixed_width or 0

    def arrow(self, precision: str = "ms") -> pa.DataType:
        if self.name == "TIMESTAMP":
            return pa.timestamp(self.unit or precision)
        if self.name == "DECIMAL":
            return pa.decimal128(self.precision or 38, self.scale or 0)
        return _ARROW_FIXED[self.name]

    def with_length(self, length: int | None) -> TDType:
        return TDType(self.name, length, self.precision, self.scale, self.unit)

    def __str__(self) -> str:
        if self.name == "DECIMAL":
            return f"DECIMAL({self.precision},{self.scale})"
        if self.name in _SIZED and self.length is not None:
            return f"{self.name}({self.length})"
        if self.name == "TIMESTAMP" and self.unit:
            return f"TIMESTAMP({self.unit})"
        return self.name


def parse_type(text: str, where: str = "type") -> TDType:
    """Parse a type as configs and DDL spell it: ``TIMESTAMP(ms)``, ``VARCHAR(24)``, ``binary``,
    ``int unsigned``, ``decimal(10,2)``. Errors name ``where`` and the text."""
    m = _TYPE_RE.match(text) if isinstance(text, str) else None
    if not m:
        raise ConfigError(f"{where}: unknown type {shown(text)}")
    name = " ".join(m.group(1).upper().split())
    name = _ALIASES.get(name, name)
    arg = m.group(2)
    if name not in _INFO or name == "NULL":
        raise ConfigError(f"{where}: unknown type {text!r}")
    if name == "TIMESTAMP":
        if arg is None:
            return TDType(name)
        if arg.lower() not in PRECISIONS:
            raise ConfigError(f"{where}: {text!r}: TIMESTAMP precision must be ms, us or ns")
        return TDType(name, unit=arg.lower())
    if name == "DECIMAL":
        parts = [p.strip() for p in (arg or "").split(",")]
        try:
            p, s = int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
        except (ValueError, IndexError):
            raise ConfigError(f"{where}: {text!r}: DECIMAL needs (precision[,scale])") from None
        if not (1 <= p <= 38 and 0 <= s <= p):
            raise ConfigError(f"{where}: {text!r}: DECIMAL precision must be 1..38 and scale 0..precision")
        return TDType(name, precision=p, scale=s)
    if arg is not None:
        if name not in _SIZED and name != "BLOB":
            raise ConfigError(f"{where}: {text!r}: {name} takes no length")
        if not arg.isdigit() or int(arg) < 1:
            raise ConfigError(f"{where}: {text!r}: length must be a positive integer")
        limit = MAX_NCHAR_LEN if name == "NCHAR" else MAX_VAR_LEN
        if name in _SIZED and int(arg) > limit:
            raise ConfigError(f"{where}: {text!r}: length exceeds TDengine's limit {limit}")
        return TDType(name, length=int(arg) if name in _SIZED else None)
    return TDType(name)


def type_from_id(type_id: int, nbytes: int, precision: int | None = None, scale: int | None = None) -> TDType:
    """The type of a field as ``taos_fetch_fields`` reports it (declared n for strings). For
    decimals a 3.3.7.5 server reports only the width (8/16) there, while a raw block's schema entry
    holds the packed ``(width<<24)|(precision<<8)|scale``; both are accepted, the plain width
    giving the widest precision of that storage (18 or 38) with scale unknown (0)."""
    name = _BY_ID.get(type_id)
    if name is None:
        raise ConfigError(f"unknown TDengine type id {type_id}")
    if name == "DECIMAL":
        if precision:  # taosAdapter's query response gives them separately
            return TDType(name, precision=precision, scale=scale or 0)
        if nbytes in (8, 16):
            return TDType(name, precision=18 if type_id == 21 else 38, scale=0)
        return TDType(name, precision=(nbytes >> 8) & 0xFF, scale=nbytes & 0xFF)
    if name in _SIZED:
        return TDType(name, length=nbytes)
    return TDType(name)


def type_from_schema(type_id: int, schema_bytes: int) -> TDType:
    """The type a raw block's own schema entry describes (declared widths recovered from the
    entry: VARCHAR n+2, NCHAR 4n+2, packed decimals)."""
    name = _BY_ID.get(type_id)
    if name is None:
        raise ConfigError(f"unknown TDengine type id {type_id} in a raw block")
    if name == "DECIMAL":
        return TDType(name, precision=(schema_bytes >> 8) & 0xFF, scale=schema_bytes & 0xFF)
    if name == "NCHAR":
        return TDType(name, length=max(0, (schema_bytes - 2) // 4))
    if name in _SIZED:
        return TDType(name, length=max(0, schema_bytes - 2))
    return TDType(name)


_FROM_ARROW = {
    pa.bool_(): "BOOL", pa.int8(): "TINYINT", pa.int16(): "SMALLINT", pa.int32(): "INT",
    pa.int64(): "BIGINT", pa.uint8(): "TINYINT UNSIGNED", pa.uint16(): "SMALLINT UNSIGNED",
    pa.uint32(): "INT UNSIGNED", pa.uint64(): "BIGINT UNSIGNED", pa.float16(): "FLOAT",
    pa.float32(): "FLOAT", pa.float64(): "DOUBLE",
}


def type_from_arrow(t: pa.DataType, where: str = "column") -> TDType:
    """The TDengine type an Arrow column becomes when nothing else says (strings unsized)."""
    if t in _FROM_ARROW:
        return TDType(_FROM_ARROW[t])
    if pa.types.is_timestamp(t):
        return TDType("TIMESTAMP", unit=t.unit if t.unit in PRECISIONS else "ms")
    if pa.types.is_date(t):
        return TDType("TIMESTAMP", unit="ms")
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return TDType("VARCHAR")
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return TDType("VARBINARY")
    if pa.types.is_decimal(t):
        return TDType("DECIMAL", precision=t.precision, scale=t.scale)
    if pa.types.is_dictionary(t):
        return type_from_arrow(t.value_type, where)
    raise ConfigError(f"{where}: Arrow type {t} has no TDengine equivalent")


def widen(a: TDType, b: TDType, where: str) -> TDType:
    """Merge two sightings of one column: same type, the larger declared width wins."""
    if a == b:
        return a
    if a.name != b.name or a.precision != b.precision or a.scale != b.scale:
        raise ConfigError(f"{where}: type changed from {a} to {b}")
    if a.length is None or b.length is None:
        return a.with_length(a.length if b.length is None else b.length)
    return a.with_length(max(a.length, b.length))


def scalar_to_json(t: TDType, v: Any) -> Any:
    """A Python value of type ``t`` (as Arrow's ``as_py`` gives it) in the JSON form backups keep."""
    if v is None:
        return None
    if t.name in ("VARBINARY", "GEOMETRY", "BLOB"):
        return {"hex": bytes(v).hex()}
    if t.name == "DECIMAL":
        return {"decimal": str(v)}
    if t.name == "TIMESTAMP":
        return int(v)  # tag timestamps are kept as epoch integers in the table's precision
    if t.name in ("FLOAT", "DOUBLE"):
        return {"float": float(v).hex()}
    return v


def scalar_from_json(t: TDType, v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, dict):
        if "hex" in v:
            return bytes.fromhex(v["hex"])
        if "decimal" in v:
            return decimal.Decimal(v["decimal"])
        if "float" in v:
            return float.fromhex(v["float"])
        if "b64" in v:
            return base64.b64decode(v["b64"])
    return v
