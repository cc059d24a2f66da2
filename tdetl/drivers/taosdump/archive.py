"""A taosdump archive's layout (formats/taosdump.md): databases and super tables from ``dbs.sql``,
child tables and their tags from ``*.avro-tbtags``, normal tables from ``*.avro-ntb``, rows in
``data*/*.avro``; and the columns of those records turned into the types the DDL declares."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ...errors import BackupError, ConfigError, shown
from ...model import Catalog, Column, Database, SuperTable, TableSpec
from ...types import PRECISIONS, parse_type
from . import avro

_CREATE_DB = re.compile(r"CREATE DATABASE IF NOT EXISTS\s+(\S+)\s*(.*?);?\s*$", re.I)
_CREATE_TABLE = re.compile(r"CREATE (?:STABLE|TABLE) IF NOT EXISTS\s+`((?:[^`]|``)+)`\.`((?:[^`]|``)+)`\s*\((.*)$",
                           re.I | re.S)
_ITEM = re.compile(r"`((?:[^`]|``)+)`\s+(.+?)\s*(COMPOSITE KEY|PRIMARY KEY)?\s*$", re.I | re.S)
_OPTION = re.compile(r"([A-Z_]+)\s+('[^']*'|\S+)", re.I)
_UNSIGNED_BITS = {"TINYINT UNSIGNED": 8, "SMALLINT UNSIGNED": 16, "INT UNSIGNED": 32, "BIGINT UNSIGNED": 64}


def _unquoted(text: str, depth: int = 0) -> Iterator[tuple[int, str, int]]:
    """Each character outside backquoted names with the parenthesis depth after it."""
    quoted = False
    for i, ch in enumerate(text):
        if ch == "`":
            quoted = not quoted
        elif not quoted:
            depth += (ch == "(") - (ch == ")")
            yield i, ch, depth


def _split(text: str, where: str) -> tuple[str, str]:
    """``cols) TAGS (tags)`` (after the opening parenthesis) -> the two lists' insides."""
    cut = next((i for i, ch, depth in _unquoted(text, 1) if ch == ")" and depth == 0), None)
    if cut is None:
        raise BackupError(f"{where}: unbalanced parentheses in {shown(text[:200])}")
    rest = text[cut + 1:].strip()
    tags = ""
    if rest.upper().startswith("TAGS"):
        inner = rest[4:].strip()
        if not inner.startswith("(") or ")" not in inner:
            raise BackupError(f"{where}: malformed TAGS clause {shown(rest[:200])}")
        tags = inner[1:inner.rindex(")")]
    return text[:cut], tags


def _items(text: str) -> list[str]:
    """A DDL list split at its top-level commas (those inside a type's parentheses kept)."""
    cuts = [i for i, ch, depth in _unquoted(text) if ch == "," and depth == 0]
    return [text[a + 1:b] for a, b in zip([-1, *cuts], [*cuts, len(text)]) if text[a + 1:b].strip()]


def columns(text: str, where: str) -> tuple[Column, ...]:
    """Columns of a DDL list: ```name` TYPE [COMPOSITE KEY]``."""
    cols = []
    for item in _items(text):
        m = _ITEM.match(item.strip())
        if not m:
            raise BackupError(f"{where}: cannot read the column {shown(item.strip()[:120])}")
        try:
            kind = parse_type(m.group(2), f"{where}: column {m.group(1)!r}")
        except ConfigError as e:
            raise BackupError(str(e)) from None
        cols.append(Column(m.group(1).replace("``", "`"), kind, primary_key=bool(m.group(3))))
    if not cols:
        raise BackupError(f"{where}: a table without columns")
    return tuple(cols)


def create_table(sql: str, where: str) -> tuple[str, str, tuple[Column, ...], tuple[Column, ...]]:
    """(database, name, columns, tags) of a CREATE STABLE/TABLE statement as taosdump writes it."""
    m = _CREATE_TABLE.match(sql.strip())
    if not m:
        raise BackupError(f"{where}: not a CREATE TABLE statement: {shown(sql.strip()[:200])}")
    cols, tags = _split(m.group(3), where)
    return (m.group(1).replace("``", "`"), m.group(2).replace("``", "`"), columns(cols, where),
            columns(tags, where) if tags.strip() else ())


@dataclass
class Archive:
    """What one taosdump output directory holds (several databases may share it)."""

    root: Path
    catalog: Catalog = field(default_factory=Catalog)
    data_files: list[tuple[Path, str, str | None]] = field(default_factory=list)  # path, database, super table

    @classmethod
    def open(cls, root: Path, where: str) -> Archive:
        if not root.is_dir():
            raise BackupError(f"{where}: {root} is not a directory")
        # taosdump writes each database into a taosdump.<id>/ of its own; a copy may hold one's contents
        bases = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("taosdump.")) or [root]
        archive = cls(root)
        for base in bases:
            if not (base / "dbs.sql").is_file():
                raise BackupError(f"{where}: no dbs.sql in {base}: not a taosdump archive (taosdump -o writes one)")
            archive._read_sql(base / "dbs.sql")
            archive._read_tables(base)
        if not archive.catalog.databases:
            raise BackupError(f"{where}: the archive's dbs.sql creates no database")
        return archive

    def _read_sql(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8", errors="strict")
        for line in (s.strip() for s in re.split(r";\s*\n|\n(?=CREATE )", text)):
            if not line or line.startswith("#"):
                continue
            m = _CREATE_DB.match(line)
            if m:
                name = m.group(1).strip("`")
                options = {k.lower(): v.strip("'") for k, v in _OPTION.findall(m.group(2))}
                precision = options.pop("precision", "ms")
                if precision not in PRECISIONS:
                    raise BackupError(f"{path}: database {name!r}: unknown precision {shown(precision)}")
                self.catalog.databases[name] = Database(name, precision, options)
                continue
            if line.upper().startswith(("CREATE STABLE", "CREATE TABLE")):
                db, name, cols, tags = create_table(line, str(path))
                if db not in self.catalog.databases:
                    raise BackupError(f"{path}: super table {name!r} of database {db!r}, which dbs.sql does not create")
                self.catalog.add_stable(SuperTable(db, name, cols, tags, self.catalog.databases[db].precision))

    def _read_tables(self, base: Path) -> None:
        cat = self.catalog
        for path in sorted(base.glob("*.avro-tbtags")):
            db = path.name.split(".", 1)[0]
            records = avro.read(path)
            for st_name in pc.unique(records.column("stbname")).to_pylist():
                st = cat.stables.get((db, st_name))
                if st is None:
                    raise BackupError(f"{path}: super table {st_name!r} is not in dbs.sql")
                rows = records.filter(pc.equal(records.column("stbname"), st_name))
                tags = [tag_values(rows.column(f"tag{i}"), t, st.precision, str(path)) for i, t in enumerate(st.tags)]
                for i, name in enumerate(rows.column("tbname").to_pylist()):
                    values = tuple(t[i] for t in tags)
                    cat.tables[(db, name)] = TableSpec(name, st.columns, db, st.name, st.tags, values, st.precision)
        for path in sorted(base.glob("*.avro-ntb")):
            for sql in avro.read(path).column("sql").to_pylist():
                db, name, cols, _ = create_table(sql, str(path))
                if db not in cat.databases:
                    raise BackupError(f"{path}: table {name!r} of database {db!r}, which dbs.sql does not create")
                cat.tables[(db, name)] = TableSpec(name, cols, db, None, (), (), cat.databases[db].precision)
        for d in sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith("data")):
            marker = d / "stbname"
            st_name = marker.read_text(encoding="utf-8").strip() if marker.is_file() else None
            for f in sorted(d.glob("*.avro")):
                self.data_files.append((f, f.name.split(".", 1)[0], st_name))


def tag_values(arr: pa.ChunkedArray | pa.Array, col: Column, precision: str, where: str) -> list[Any]:
    return values(arr, col, precision, where).to_pylist()


def values(arr: pa.ChunkedArray | pa.Array, col: Column, precision: str, where: str) -> pa.Array:
    """One record column as the DDL types it (formats/taosdump.md: unsigned as two parts, NCHAR,
    JSON and GEOMETRY as bytes)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    name = col.type.name
    try:
        if name in _UNSIGNED_BITS:
            bits = _UNSIGNED_BITS[name]
            first, second = pc.list_element(arr, 0), pc.list_element(arr, 1)
            if bits == 64:
                total = pc.add(first.cast(pa.int64()).view(pa.uint64()), second.cast(pa.int64()).view(pa.uint64()))
                return total
            total = pc.bit_wise_and(pc.add(first.cast(pa.int64()), second.cast(pa.int64())), (1 << bits) - 1)
            return total.cast(col.type.arrow(precision))
        if name == "TIMESTAMP":
            return arr.cast(pa.int64()).cast(pa.timestamp(precision))
        if name in ("NCHAR", "JSON") and pa.types.is_binary(arr.type):
            return arr.cast(pa.string())
        return arr.cast(col.type.arrow(precision))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise BackupError(f"{where}: column {col.name!r} ({col.type}) does not hold what its type needs:"
                          f" {' '.join(str(e).split())[:200]}") from None
