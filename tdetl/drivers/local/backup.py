"""The on-disk backup format (formats/backup.md): a directory with ``manifest.json`` (written last;
its presence means the backup is complete), ``journal.jsonl`` while a backup is in progress, and
zstd/lz4-compressed Arrow IPC files under ``data/``. Every file is written to a temp name, synced,
then renamed, and carries a sha256 in the manifest.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ...durable import FILE_MODE, make_dirs
from ...errors import BackupError, TdetlError, shown
from ...model import PRECISIONS, Catalog, Database, SuperTable
from ...version import __version__

FORMAT = "tdetl-backup"
VERSION = 1
MANIFEST = "manifest.json"
JOURNAL = "journal.jsonl"
PARTS = "parts"  # a cluster run's part journals, one per share attempt: parts/<share>.jsonl
DATA = "data"
LOCK = ".lock"  # held (flock) by the run writing the backup
CODECS = ("zstd", "lz4", "none")
TABLES_KEY = b"tdetl.tables"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


_TMP = ".tmp-"  # write_atomic's temp names: .<name>.tmp-<pid>


def write_atomic(path: Path, data: Any) -> None:
    """Write ``data`` (bytes-like) to ``path`` via a synced temp file and a rename; a write that fails
    (a full disk) leaves no temp file behind."""
    make_dirs(path.parent)
    tmp = path.with_name(f".{path.name}{_TMP}{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with open(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def lock(root: Path) -> int:
    """Hold the backup directory for this process (an OS lock, gone with the process): two runs
    writing one backup at once would corrupt it. Returns the lock's file descriptor."""
    make_dirs(root)
    path = root / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BackupError(f"{root} is being written by another tdetl run; wait for it to end or choose"
                              " another directory") from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the lock file was replaced between open and lock: take the new one


def unlock(root: Path, fd: int) -> None:
    (root / LOCK).unlink(missing_ok=True)
    os.close(fd)


def is_leftover(name: str) -> bool:
    """A name tdetl itself leaves in a backup directory that holds no backup yet: its lock, and temp
    files of a write that a crash cut short."""
    return name == LOCK or (name.startswith(".") and _TMP in name)


def ipc_options(codec: str, level: int | None) -> pa.ipc.IpcWriteOptions:
    if codec == "none":
        return pa.ipc.IpcWriteOptions()
    return pa.ipc.IpcWriteOptions(compression=pa.Codec(codec if codec != "lz4" else "lz4", level))


@dataclass
class EncodedFile:
    buffer: pa.Buffer
    entry: dict[str, Any]


def encode_file(rel_path: str, group: tuple[str | None, str], stable: str | None,
                parts: list[tuple[str, list[pa.RecordBatch]]], precision: str,
                options: pa.ipc.IpcWriteOptions) -> EncodedFile:
    """One data file: the rows of several tables of one group, table after table. The table ranges
    go in the schema metadata (so a file describes itself) and in the manifest entry."""
    ranges: list[list[Any]] = []
    spans: list[list[Any]] = []  # each table's first and last timestamp
    batches: list[pa.RecordBatch] = []
    start = 0
    for name, bs in parts:
        n = sum(b.num_rows for b in bs)
        ranges.append([name, start, n])
        spans.append(_min_max(pa.chunked_array([b.column(0) for b in bs], bs[0].schema.field(0).type)))
        start += n
        batches.extend(bs)
    schema = batches[0].schema
    for b in batches:
        if not b.schema.equals(schema):
            raise BackupError(f"group {group[1]!r}: tables with different columns ({b.schema.names}"
                              f" vs {schema.names}) cannot share a backup file")
    table = pa.Table.from_batches(batches, schema)
    if len(batches) > 1 and start // len(batches) < 65536:
        table = table.combine_chunks()  # many small batches compress badly and cost per-batch headers
    meta = {TABLES_KEY: json.dumps(ranges, ensure_ascii=False).encode()}
    table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=1 << 20)
    buf = sink.getvalue()
    lo, hi = _min_max(table.column(0))
    entry = {
        "path": rel_path, "database": group[0], "group": group[1], "stable": stable,
        "precision": precision, "rows": start, "bytes": buf.size,
        "sha256": hashlib.sha256(buf).hexdigest(),
        "min_ts": lo, "max_ts": hi, "tables": ranges, "table_ts": spans,
    }
    return EncodedFile(buf, entry)


def _min_max(ts: pa.ChunkedArray | pa.Array) -> list[Any]:
    """First and last timestamp as epoch integers in the column's unit."""
    mm = pc.min_max(ts.cast(pa.int64()) if pa.types.is_timestamp(ts.type) else ts)
    return [mm["min"].as_py(), mm["max"].as_py()]


def read_verified(root: Path, entry: dict[str, Any]) -> pa.Buffer:
    """The file's bytes after checking size and sha256; a mismatch names the file."""
    path = root / entry["path"]
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BackupError(f"backup file {path} cannot be read: {e.strerror}") from None
    if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise BackupError(f"backup file {path} is corrupt: its sha256/size does not match"
                          f" the manifest (expected {entry['bytes']} bytes, sha256 {entry['sha256'][:16]}…)")
    return pa.py_buffer(data)


def open_verified(root: Path, entry: dict[str, Any]) -> pa.Table:
    """The file's rows, after checking that the file's own record of its tables (its schema
    metadata) is the manifest's: an edited manifest cannot drop rows or move them between tables."""
    buf = read_verified(root, entry)
    path = root / entry["path"]
    try:
        table = pa.ipc.open_file(buf).read_all()
    except pa.ArrowInvalid as e:
        raise BackupError(f"backup file {path} is not a readable Arrow file: {e}") from None
    try:
        own = json.loads((table.schema.metadata or {})[TABLES_KEY])
    except (KeyError, ValueError):
        raise BackupError(f"backup file {path} does not record its tables") from None
    if own != entry["tables"] or table.num_rows != entry["rows"]:
        raise BackupError(f"backup file {path} holds {table.num_rows} rows of tables {str(own)[:200]}, but the"
                          f" manifest says {entry['rows']} rows of {str(entry['tables'])[:200]}: the manifest was"
                          " changed")
    return table


def catalog_to_json(cat: Catalog) -> dict[str, Any]:
    return {
        "databases": [{"name": d.name, "precision": d.precision, "options": d.options}
                      for d in cat.databases.values()],
        "stables": [st.to_json() for st in cat.stables.values()],
        "tables": [t.to_json() for t in cat.tables.values()],
    }


def catalog_from_json(doc: dict[str, Any], where: str) -> Catalog:
    cat = Catalog()
    try:
        for d in doc.get("databases", []):
            if not isinstance(d["name"], str) or d.get("precision", "ms") not in PRECISIONS \
                    or not isinstance(d.get("options", {}), dict):
                raise BackupError(f"{where}: database entry {str(d)[:200]} has a field of the wrong kind")
            cat.databases[d["name"]] = Database(d["name"], d.get("precision", "ms"), d.get("options", {}))
        for s in doc.get("stables", []):
            cat.add_stable(SuperTable.from_json(s))
        for t in doc.get("tables", []):
            spec = cat.table_from_json(t)
            cat.tables[(spec.database, spec.name)] = spec
    except KeyError as e:
        raise BackupError(f"{where}: malformed entry (missing {e})") from None
    except (TypeError, AttributeError, ValueError, pa.ArrowException, TdetlError) as e:
        raise BackupError(f"{where}: malformed entry ({shown(str(e), quote=False)})") from None
    return cat


def read_journal(path: Path) -> list[dict[str, Any]]:
    """A journal's lines; a last line cut short by a crash is left out (its files are orphans)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    entries = []
    for i, line in enumerate(lines):
        try:
            entries.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:
                break
            raise BackupError(f"{path}: line {i + 1} is not JSON") from None
    return entries


def read_parts(root: Path) -> dict[str, list[dict[str, Any]]]:
    """The part journals of a cluster run, in the order their shares started."""
    found = {p.stem: read_journal(p) for p in (root / PARTS).glob("*.jsonl")} if (root / PARTS).is_dir() else {}
    parts = {name: lines for name, lines in found.items() if lines and lines[0].get("part") == name}
    return dict(sorted(parts.items(), key=lambda kv: kv[1][0].get("started", 0)))


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.exists():
        if (root / JOURNAL).exists():
            raise BackupError(f"{root} holds an unfinished backup (no {MANIFEST});"
                              " run the same backup again to complete it")
        raise BackupError(f"{root} is not a tdetl backup (no {MANIFEST})")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BackupError(f"{path} cannot be read as JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BackupError(f"{path} is not a tdetl backup manifest")
    if doc.get("version") != VERSION:
        raise BackupError(f"{path}: backup format version {doc.get('version')!r} is not supported"
                          f" (this tdetl reads version {VERSION})")
    for key in ("files", "stables", "tables", "databases"):
        if not isinstance(doc.get(key), list):
            raise BackupError(f"{path}: '{key}' must be a list")
    for i, entry in enumerate(doc["files"]):
        check_entry(root, entry, f"{path}: files[{i}]")
    return doc


def check_entry(root: Path, entry: Any, where: str) -> None:
    """A manifest's file entry is well formed, names a file inside the backup, and its table ranges
    cover its rows exactly once in order."""
    if not isinstance(entry, dict):
        raise BackupError(f"{where} is not an object")
    rel = entry.get("path")
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or ".." in Path(rel).parts \
            or not rel.startswith(f"{DATA}/"):
        raise BackupError(f"{where}: path {str(rel)[:200]!r} is not a file under the backup's {DATA}/ directory")
    real = (root / rel).resolve()
    if not real.is_relative_to((root / DATA).resolve()):
        raise BackupError(f"{where}: path {rel[:200]!r} leads outside the backup directory (to {str(real)[:200]})")
    run = entry.get("run", 1)
    if not isinstance(run, int) or isinstance(run, bool) or run < 1 or not isinstance(entry.get("group"), str) \
            or not isinstance(entry.get("database"), (str, type(None))) \
            or not isinstance(entry.get("stable"), (str, type(None))):
        raise BackupError(f"{where} ({rel[:200]}): run, group, database or stable of the wrong kind")
    rows, ranges = entry.get("rows"), entry.get("tables")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0 or not isinstance(ranges, list) \
            or not isinstance(entry.get("bytes"), int) or not isinstance(entry.get("sha256"), str):
        raise BackupError(f"{where} ({rel[:200]}): rows, bytes, sha256 or tables missing or of the wrong type")
    at = 0
    for r in ranges:
        if not (isinstance(r, list) and len(r) == 3 and isinstance(r[0], str) and r[1] == at
                and isinstance(r[2], int) and not isinstance(r[2], bool) and r[2] >= 0):
            raise BackupError(f"{where} ({rel[:200]}): table range {str(r)[:200]} does not follow the one before it")
        at += r[2]
    if at != rows:
        raise BackupError(f"{where} ({rel[:200]}): its tables hold {at} rows, the entry says {rows}")


def new_manifest(source: str, codec: str, level: int | None, created: str, cat: Catalog,
                 files: list[dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "tool": f"tdetl {__version__}", "created": created,
            "completed": now_iso(), "source": source, "compression": {"codec": codec, "level": level},
            **catalog_to_json(cat), "files": files, "runs": runs}


def runs_of(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs a backup was written in (a backup from before runs were recorded is one run)."""
    runs = manifest.get("runs")
    if isinstance(runs, list) and runs:
        return runs
    return [{"run": 1, "started": manifest.get("created"), "completed": manifest.get("completed"),
             "rows": sum(f.get("rows", 0) for f in manifest["files"]), "files": len(manifest["files"]),
             "positions": {}}]
