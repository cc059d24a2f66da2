"""Which OPC UA points to collect and how their rows look: ``ua.nodes`` with ``opc_table_config``
(one super table per value type, ``<stable_prefix>_<type>``, one child table per node code), or a
``csv_config_file`` with a row per point (point_id, stable, tbname, enabled, ts_col,
received_time_col, value_col, quality_col, type, ``tag::<type>::<name>`` columns)."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ...errors import ConfigError, DsnError
from ...types import TDType, parse_type

ROLES = ("received_time", "original_time", "value", "quality")
TIMESTAMP = TDType("TIMESTAMP")
POINT_TAG = "point_id"

# OPC UA built-in types (VariantType values) as TDengine types and the super-table suffix
VARIANT_TYPES: dict[int, str] = {
    1: "BOOL", 2: "TINYINT", 3: "TINYINT UNSIGNED", 4: "SMALLINT", 5: "SMALLINT UNSIGNED", 6: "INT",
    7: "INT UNSIGNED", 8: "BIGINT", 9: "BIGINT UNSIGNED", 10: "FLOAT", 11: "DOUBLE", 12: "VARCHAR",
    13: "TIMESTAMP", 15: "VARBINARY", 21: "VARCHAR",
}
SUFFIX = {"BOOL": "bool", "TINYINT": "tinyint", "TINYINT UNSIGNED": "utinyint", "SMALLINT": "smallint",
          "SMALLINT UNSIGNED": "usmallint", "INT": "int", "INT UNSIGNED": "uint", "BIGINT": "bigint",
          "BIGINT UNSIGNED": "ubigint", "FLOAT": "float", "DOUBLE": "double", "VARCHAR": "varchar",
          "NCHAR": "nchar", "TIMESTAMP": "timestamp", "VARBINARY": "varbinary"}


@dataclass(frozen=True)
class Col:
    role: str
    name: str
    type: TDType | None  # None: the point's value type


@dataclass
class Point:
    node_id: str
    code: str  # the child table
    stable: str  # may hold {type}
    columns: tuple[Col, ...]  # the primary timestamp first
    value_type: TDType | None = None  # from the CSV's type column; else read from the server
    tags: tuple[tuple[str, TDType, Any], ...] = field(default=())
    where: str = ""

    def stable_name(self, value_type: TDType) -> str:
        return self.stable.replace("{type}", SUFFIX.get(value_type.name, value_type.name.lower()))


def split_nodes(text: str, where: str) -> list[tuple[str, str]]:
    """``<nodeid>::<code>[,...]``; a comma inside a string node id stays (items start with ns=/i=/s=...)."""
    items = re.split(r",(?=\s*(?:nsu?=|[isgb]=))", text)
    out = []
    for item in items:
        node, sep, code = item.strip().rpartition("::")
        if not sep or not node or not code:
            raise DsnError(f"{where}: ua.nodes item {item.strip()!r} must be <nodeid>::<code>,"
                           f" e.g. ns=2;i=2::DSF1312")
        out.append((node.strip(), code.strip()))
    return out


def table_config(text: str, where: str) -> tuple[str, tuple[Col, ...]]:
    """``opc_table_config``: the super-table prefix and the columns, primary timestamp first."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise DsnError(f"{where}: opc_table_config is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise DsnError(f"{where}: opc_table_config must be a JSON object")
    prefix = doc.get("stable_prefix") or "opc"
    configs = doc.get("column_configs")
    if not isinstance(configs, list) or not configs:
        raise DsnError(f"{where}: opc_table_config needs column_configs, a list of"
                       f" {{column_name, column_type, column_alias, is_primary_key}}")
    cols: list[Col] = []
    primary: Col | None = None
    for i, c in enumerate(configs):
        at = f"{where}: opc_table_config column_configs[{i}]"
        role = c.get("column_name") if isinstance(c, dict) else None
        if role not in ROLES:
            raise DsnError(f"{at}: column_name {role!r} must be one of {', '.join(ROLES)}")
        try:
            kind = parse_type(c["column_type"], at) if c.get("column_type") else None
        except ConfigError as e:
            raise DsnError(str(e)) from None
        if kind is None and role != "value":
            kind = TIMESTAMP if role.endswith("_time") else TDType("INT")
        if role.endswith("_time") and kind != TIMESTAMP:
            raise DsnError(f"{at}: {role} is a timestamp, not {kind}")
        col = Col(role, str(c.get("column_alias") or role), kind)
        if any(o.name == col.name for o in cols):
            raise DsnError(f"{at}: column {col.name!r} appears twice")
        if any(o.role == role for o in cols):
            raise DsnError(f"{at}: {role} appears twice")
        if c.get("is_primary_key"):
            if primary is not None:
                raise DsnError(f"{at}: only one column can be the primary key ({primary.name!r} is)")
            if not role.endswith("_time"):
                raise DsnError(f"{at}: the primary key must be received_time or original_time, not {role}")
            primary = col
        cols.append(col)
    if not any(c.role == "value" for c in cols):
        raise DsnError(f"{where}: opc_table_config column_configs need a value column")
    if primary is None:
        primary = next((c for c in cols if c.role.endswith("_time")), None)
        if primary is None:
            raise DsnError(f"{where}: opc_table_config column_configs need received_time or original_time"
                           f" as the primary key")
    return prefix, (primary, *(c for c in cols if c is not primary))


def points_from_nodes(nodes: str, config: str | None, where: str) -> list[Point]:
    if not config:
        raise DsnError(f"{where}: ua.nodes needs opc_table_config (the seed's single-column table layout)")
    prefix, cols = table_config(config, where)
    return [Point(node, code, f"{prefix}_{{type}}", cols, None,
                  ((POINT_TAG, TDType("VARCHAR", length=max(1, len(node.encode()))), node),),
                  f"ua.nodes {node}")
            for node, code in split_nodes(nodes, where)]


def _tag_value(text: str, kind: TDType, where: str) -> Any:
    """A CSV tag cell as its declared type (the text itself for text types)."""
    if kind.is_string:
        return text
    try:
        return pa.scalar(text).cast(kind.arrow("us")).as_py()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DsnError(f"{where}: {text!r} is not {kind}") from None


def points_from_csv(text: str, where: str) -> list[Point]:
    """The CSV point configuration; errors name the file's line."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows:
        raise DsnError(f"{where}: csv_config_file is empty")
    head = [h.strip() for h in rows[0]]
    for need in ("point_id", "tbname"):
        if need not in head:
            raise DsnError(f"{where}: csv_config_file has no {need} column (header: {','.join(head)})")
    tag_cols = []
    for i, h in enumerate(head):
        if h.lower().startswith("tag::"):
            parts = h.split("::")
            if len(parts) != 3 or not parts[2]:
                raise DsnError(f"{where}: csv_config_file column {h!r} must be tag::<type>::<name>")
            try:
                tag_cols.append((i, parts[2], parse_type(parts[1], f"{where}: csv_config_file column {h!r}")))
            except ConfigError as e:
                raise DsnError(str(e)) from None
    points = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(v.strip() for v in row):
            continue
        at = f"{where}: csv_config_file line {line}"
        rec = {h: (row[i].strip() if i < len(row) else "") for i, h in enumerate(head)}
        enabled = (rec.get("enabled") or rec.get("enable") or "true").lower()
        if enabled not in ("true", "1", "yes", "false", "0", "no"):
            raise DsnError(f"{at}: enabled={enabled!r} must be true or false")
        if enabled in ("false", "0", "no"):
            continue
        if not rec["point_id"] or not rec["tbname"]:
            raise DsnError(f"{at}: point_id and tbname are required")
        try:
            vtype = parse_type(rec["type"], f"{at}: type") if rec.get("type") else None
        except ConfigError as e:
            raise DsnError(str(e)) from None
        received = rec.get("received_time_col") or rec.get("received_ts_col") or ""
        original = rec.get("ts_col") or ("" if received else "ts")
        cols = [Col("received_time", received, TIMESTAMP)] if received else []
        if original:
            cols.append(Col("original_time", original, TIMESTAMP))
        cols.append(Col("value", rec.get("value_col") or "val", None))
        if rec.get("quality_col"):
            cols.append(Col("quality", rec["quality_col"], TDType("INT")))
        names = [c.name for c in cols]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise DsnError(f"{at}: two columns are both named {dup!r}")
        tags = []
        for i, name, kind in tag_cols:
            text = row[i].strip() if i < len(row) else ""
            tags.append((name, kind, _tag_value(text, kind, f"{at}: tag {name!r}") if text else None))
        if not tags:
            width = max(1, len(rec["point_id"].encode()))
            tags.append((POINT_TAG, TDType("VARCHAR", length=width), rec["point_id"]))
        points.append(Point(rec["point_id"], rec["tbname"], rec.get("stable") or "opc_{type}", tuple(cols), vtype,
                            tuple(tags), f"csv_config_file line {line}"))
    if not points:
        raise DsnError(f"{where}: csv_config_file enables no point")
    return points
