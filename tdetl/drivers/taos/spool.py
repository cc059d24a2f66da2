"""The write cache of ``--on unreachable=cache`` (formats/cache.md): batches a target could not take
wait on disk as zstd-compressed Arrow IPC files, one directory per flush, and are replayed in order
once the target answers, before anything newer. A flush's directory appears whole (written under a
temporary name, fsynced, renamed), so a ``kill -9`` leaves either all of it or none; a directory is
deleted only after its replay was acknowledged, so a replay cut short is repeated (TDengine keeps one
row per table and timestamp: nothing lands twice)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from ...dsn import Dsn
from ...durable import make_dirs, sync_path
from ...errors import DsnError, SinkError
from ...model import Column, TableBatch, TableSpec
from ...types import scalar_from_json, scalar_to_json

_META = b"tdetl.spec"


_META_ROWS = b"tdetl.rows"
DEFAULT_PORTS = {None: 6030, "ws": 6041, "wss": 6041, "http": 6041, "https": 6041}


def target_key(dsn: Dsn, database: str) -> str:
    """What identifies a target: host, port and database. A rerun with other parameters, flags or
    user finds (and replays) what an earlier run cached for the same database."""
    host = (dsn.host or "localhost").lower()
    return f"{host}:{dsn.port or DEFAULT_PORTS.get(dsn.protocol, 6030)}/{database}"


def default_dir(key: str) -> Path:
    """The cache of one target (:func:`target_key`) in the state directory."""
    base = os.environ.get("TDETL_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "tdetl")
    return Path(base) / "cache" / hashlib.sha256(key.encode()).hexdigest()[:16]


def _spec_json(s: TableSpec) -> dict[str, Any]:
    return {"name": s.name, "database": s.database, "stable": s.stable, "precision": s.precision,
            "columns": [c.to_json() for c in s.columns], "tags": [t.to_json() for t in s.tags],
            "tag_values": [scalar_to_json(t.type, v) for t, v in zip(s.tags, s.tag_values)]}


def _spec_from_json(d: dict[str, Any], where: str) -> TableSpec:
    cols = tuple(Column.from_json(c, where) for c in d["columns"])
    tags = tuple(Column.from_json(t, where) for t in d["tags"])
    values = tuple(scalar_from_json(t.type, v) for t, v in zip(tags, d["tag_values"]))
    return TableSpec(d["name"], cols, d.get("database"), d.get("stable"), tags, values, d.get("precision", "ms"))


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir, self.max_bytes = directory, max_bytes
        self.spooled = 0  # rows written to the cache by this run
        self.replayed = 0  # rows replayed from it by this run
        for tmp in self.dir.glob("*.tmp") if self.dir.exists() else ():  # a spool cut short: never acknowledged
            shutil.rmtree(tmp, ignore_errors=True)

    def waiting(self) -> list[Path]:
        return sorted(p for p in self.dir.iterdir() if p.is_dir() and not p.name.endswith(".tmp")) \
            if self.dir.exists() else []

    def size(self) -> int:
        return sum(f.stat().st_size for d in self.waiting() for f in d.iterdir())

    def put(self, batches: list[TableBatch]) -> None:
        """Keep ``batches`` (one flush) durably, after everything already waiting."""
        need = sum(b.nbytes for b in batches)
        if self.size() + need // 4 > self.max_bytes:  # IPC with zstd: about a quarter of the Arrow size
            raise SinkError(f"the write cache {self.dir} is full (cache-max-bytes={self.max_bytes}); stopping with"
                            " nothing lost: what was not cached is not acknowledged to the source")
        make_dirs(self.dir)
        waiting = self.waiting()
        seq = int(waiting[-1].name) + 1 if waiting else 0
        tmp = self.dir / f"{seq:012d}.tmp"
        tmp.mkdir(0o700)
        opts = pa.ipc.IpcWriteOptions(compression="zstd")
        for i, b in enumerate(batches):
            schema = b.data.schema.with_metadata({_META: json.dumps(_spec_json(b.spec)).encode(),
                                                  _META_ROWS: str(b.num_rows).encode()})
            path = tmp / f"{i:08d}.arrow"
            with pa.OSFile(str(path), "wb") as f, pa.ipc.new_file(f, schema, options=opts) as w:
                w.write_batch(b.data.replace_schema_metadata(schema.metadata))
            sync_path(path)
        sync_path(tmp)
        tmp.rename(self.dir / f"{seq:012d}")
        sync_path(self.dir)
        self.spooled += sum(b.num_rows for b in batches)

    def read(self, flush_dir: Path) -> list[TableBatch]:
        out = []
        for path in sorted(flush_dir.glob("*.arrow")):
            try:
                with pa.ipc.open_file(pa.BufferReader(path.read_bytes())) as reader:
                    meta = reader.schema.metadata or {}
                    spec = _spec_from_json(json.loads(meta[_META]), str(path))
                    for i in range(reader.num_record_batches):
                        out.append(TableBatch(spec, reader.get_batch(i).replace_schema_metadata(None), "", None))
            except (OSError, KeyError, ValueError, pa.ArrowInvalid) as e:
                raise SinkError(f"the write cache file {path} is unreadable ({e}); move it away to go on") from None
        return out

    def rows(self) -> int:
        """Rows waiting, from the files' footers (the data is not read)."""
        total = 0
        for d in self.waiting():
            for path in d.glob("*.arrow"):
                with pa.ipc.open_file(pa.memory_map(str(path))) as reader:
                    meta = reader.schema.metadata or {}
                    total += int(meta[_META_ROWS]) if _META_ROWS in meta else \
                        sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
        return total

    def done(self, flush_dir: Path, rows: int) -> None:
        shutil.rmtree(flush_dir)
        self.replayed += rows

    def __iter__(self) -> Iterator[Path]:
        return iter(self.waiting())


def describe_cache(dsn: Dsn, directory: str | None = None) -> str:
    """``tdetl cache``: what waits for a target, without connecting to it."""
    if dsn.driver != "taos":
        raise DsnError(f"{dsn.masked()}: only taos:// targets keep a write cache")
    key = target_key(dsn, dsn.object.partition(".")[0])
    spool = Spool(Path(directory).expanduser() if directory else default_dir(key), 0)
    flushes = spool.waiting()
    if not flushes:
        return f"{key}: nothing waits in the write cache {spool.dir}"
    return (f"{key}: {spool.rows():,} rows in {len(flushes):,} flushes ({spool.size():,} bytes) wait in the write"
            f" cache {spool.dir}; the next run into this target replays them")
