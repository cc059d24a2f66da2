"""``local:<dir>`` as a target: a resumable backup (layout in formats/backup.md).

Batches are buffered per group (super table or normal table). A flush writes one file per group
atomically, then appends one synced journal line naming the files, the tables and super tables
they introduced, and the source checkpoint they complete. A rerun after a crash reads the journal,
deletes files no journal line names, and resumes the source from the last checkpoint. The manifest
is written last, so a directory with a manifest is a complete backup.

On a cluster (``--cluster``) the driver's sink writes the journal's head and catalog and, at the end,
the manifest; each share's worker writes its own files and a part journal (``parts/<share>.jsonl``,
lines as above), so no two processes append to one file. A share whose worker died starts again
from its part journal's last checkpoint; a rerun after a crash reads every part journal.

A source whose runs continue each other (a TMQ subscription) extends a complete backup instead: each
run adds its files and a ``runs`` entry (when, rows, the positions reached) to the manifest, so the
first run is a full backup and each later one an increment; restore replays the runs in order.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from ...capabilities import SinkCapabilities
from ...dsn import Dsn
from ...durable import sync_path
from ...errors import BackupError
from ...model import Catalog, TableBatch, fit
from ...options import Options
from ...params import Param, Spec
from ...quality import Rejects
from ...sink import Sink
from ...source import DONE, POSITION_EVERY
from ..common.files import safe_name
from . import backup as fmt


class LocalSink(Sink):
    capabilities = SinkCapabilities(local_files=True)  # a resumed run rewrites from its own journal
    spec = Spec(Param("compression", "choice", "zstd", "Arrow IPC compression", choices=fmt.CODECS),
                Param("level", "int", None, "compression level (zstd default 3)", minimum=-7),
                Param("file_rows", "int", 1_000_000, "rows per data file (and buffered at most)", minimum=1),
                Param("file_bytes", "int", 512 << 20, "bytes per data file", minimum=1024))

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        self.root = dsn.path
        cfg = self.config
        self.codec = cfg["compression"]
        self.level = cfg["level"] if cfg["level"] is not None else (3 if self.codec == "zstd" else None)
        self.file_rows = cfg["file_rows"]
        self.file_bytes = cfg["file_bytes"]
        self.ipc = fmt.ipc_options(self.codec, self.level)
        self.catalog = Catalog()
        self.files: list[dict[str, Any]] = []
        self.created = fmt.now_iso()
        self.source = ""
        self._resumed = False
        self._buffer: dict[tuple[str | None, str], dict[str, list[pa.RecordBatch]]] = {}
        self._specs: dict[tuple[str | None, str], Any] = {}
        self._rows = self._bytes = 0
        self._new_tables: list[Any] = []
        self._dirty_stables: set[tuple[str | None, str]] = set()
        self.runs: list[dict[str, Any]] = []  # earlier runs of an extended backup
        self.run = 1
        self._extending = False
        self._run_rows = 0
        self._positions: dict[str, Any] = {}
        self._held: dict[str, list[TableBatch]] = {}  # partition -> batches after its last position
        self._held_rows: dict[str, int] = {}
        self._merged: set[str] = set()  # part journals already in self.files
        self._lock: int | None = None  # the directory's lock, held by the run that is not a share
        self._made_root = False

    def local_root(self) -> Path:
        return self.root

    @property
    def part(self) -> str | None:
        """Set when others write this backup alongside (a cluster's shares): the part journal's name."""
        return self.shared.name if self.shared is not None else None

    @property
    def journal(self) -> Path:
        return self.root / fmt.JOURNAL if self.part is None else self.root / fmt.PARTS / f"{self.part}.jsonl"

    def resume_state(self, source_dsn: Dsn, appends: bool = False) -> dict[str, Any] | None:
        self.source = source_dsn.without_password()
        if self.part is not None:
            self._join()
            return None  # the driver hands the share its checkpoint
        if self._lock is None:
            self._made_root = not self.root.exists()
            self._lock = fmt.lock(self.root)
        if (self.root / fmt.MANIFEST).exists():
            if not appends:
                raise BackupError(f"{self.root} already holds a complete backup; choose an empty directory")
            self._extend(fmt.read_manifest(self.root))
        if not self.journal.exists():
            return None
        checkpoint: dict[str, Any] = {}
        entries = self._head()
        doc: dict[str, Any] = {"databases": [], "stables": [], "tables": []}
        for e in entries[1:]:
            for key in doc:
                doc[key].extend(e.get(key, []))
            self.files.extend(e.get("files", []))
            self._run_rows += sum(f["rows"] for f in e.get("files", []))
            checkpoint = e.get("checkpoint") or checkpoint
        parts, reached = self._take_parts()  # a cluster run's shares
        for key in ("stables", "tables"):
            doc[key].extend(parts[key])
        checkpoint.update(reached)
        journaled = fmt.catalog_from_json(doc, str(self.journal))
        if self._extending:
            self.catalog.merge(journaled)
        else:
            self.catalog = journaled
        self._remove_orphans()
        # rewrite the journal without a torn last line so later appends stay parseable
        fmt.write_atomic(self.journal, "".join(json.dumps(e) + "\n" for e in entries).encode())
        self._resumed = True
        return checkpoint

    def _head(self) -> list[dict[str, Any]]:
        """The main journal's lines, its head checked against this run."""
        entries = fmt.read_journal(self.root / fmt.JOURNAL)
        if not entries or entries[0].get("journal") != fmt.FORMAT:
            raise BackupError(f"{self.root / fmt.JOURNAL} is not a tdetl backup journal")
        head = entries[0]
        if head.get("run", 1) != self.run:
            raise BackupError(f"{self.root / fmt.JOURNAL}: an unfinished run {head.get('run', 1)} does not follow"
                              f" the manifest's {len(self.runs)} runs")
        if head.get("source") != self.source:
            raise BackupError(f"{self.root} holds an unfinished backup of {head.get('source')!r},"
                              f" not of {self.source!r}; choose another directory")
        if head.get("compression") != {"codec": self.codec, "level": self.level}:
            raise BackupError(f"{self.root}: unfinished backup used compression"
                              f" {head.get('compression')}; resume it with the same parameters")
        self.created = head.get("created", self.created)
        return entries

    def _join(self) -> None:
        """A share's worker: the backup is the one its driver began (head, run number, settings)."""
        if not (self.root / fmt.JOURNAL).exists():
            raise BackupError(f"{self.root} holds no unfinished backup for share {self.part} to write into:"
                              " is it on a filesystem this node shares with the driver?")
        manifest = self.root / fmt.MANIFEST
        if manifest.exists():
            self.runs = fmt.runs_of(fmt.read_manifest(self.root))
            self.run = len(self.runs) + 1
        self._head()

    def _take_parts(self) -> tuple[dict[str, list[Any]], dict[str, Any]]:
        """Part journals not yet taken in: their files and rows join this backup's; returned are
        the super tables and tables they record, and the checkpoint they reached (each covers its
        own share's partitions; a later attempt's wins)."""
        doc: dict[str, list[Any]] = {"stables": [], "tables": []}
        reached: dict[str, Any] = {}
        for name, lines in fmt.read_parts(self.root).items():
            if name in self._merged:
                continue
            self._merged.add(name)
            for e in lines[1:]:
                self.files.extend(e.get("files", []))
                self._run_rows += sum(f["rows"] for f in e.get("files", []))
                for key in doc:
                    doc[key].extend(e.get(key, []))
                for p, at in (e.get("checkpoint") or {}).items():
                    reached[p] = at
                    if at != DONE:
                        self._positions[p] = at
        return doc, reached

    def share_checkpoint(self, share: str) -> dict[str, Any] | None:
        path = self.root / fmt.PARTS / f"{share}.jsonl"
        if not path.exists():
            return None
        lines = fmt.read_journal(path)
        return next((dict(e["checkpoint"]) for e in reversed(lines[1:]) if e.get("checkpoint") is not None), None)

    def _extend(self, manifest: dict[str, Any]) -> None:
        """Continue a complete backup of the same source with a new run."""
        if manifest.get("source") != self.source:
            raise BackupError(f"{self.root} holds a backup of {manifest.get('source')!r}, not of {self.source!r};"
                              " choose another directory")
        if manifest.get("compression") != {"codec": self.codec, "level": self.level}:
            raise BackupError(f"{self.root}: the backup uses compression {manifest.get('compression')};"
                              " extend it with the same parameters")
        self.catalog = fmt.catalog_from_json(manifest, str(self.root / fmt.MANIFEST))
        self.files = list(manifest["files"])
        self.runs = fmt.runs_of(manifest)
        self.run = len(self.runs) + 1
        self.started = fmt.now_iso()
        self._extending = True

    def _remove_orphans(self) -> None:
        known = {f["path"] for f in self.files}
        data = self.root / fmt.DATA
        if not data.exists():
            return
        for p in data.rglob("*"):
            if p.is_file() and p.relative_to(self.root).as_posix() not in known:
                p.unlink()

    def prepare(self, catalog: Catalog) -> None:
        if self.part is not None:
            self.catalog.merge(catalog)
            head = {"part": self.part, "started": time.time()}
            fmt.write_atomic(self.journal, (json.dumps(head) + "\n").encode())
            return
        if self._resumed:
            for st in catalog.stables.values():
                self.catalog.add_stable(st)
            self.catalog.databases.update(catalog.databases)
            return
        if self._extending:
            self.catalog.merge(catalog)
            head = {"journal": fmt.FORMAT, "version": fmt.VERSION, "source": self.source, "run": self.run,
                    "created": self.created, "compression": {"codec": self.codec, "level": self.level}}
            fmt.write_atomic(self.journal, (json.dumps(head) + "\n" + json.dumps(fmt.catalog_to_json(self.catalog))
                                            + "\n").encode())
            return
        for p in self.root.iterdir() if self.root.exists() else ():
            if not fmt.is_leftover(p.name):
                raise BackupError(f"{self.root} is not empty and holds no unfinished backup;"
                                  " choose an empty directory")
            if p.name != fmt.LOCK:
                p.unlink()
        fmt.make_dirs(self.root)
        self.catalog.databases.update(catalog.databases)
        for st in catalog.stables.values():
            self.catalog.add_stable(st)
        for spec in catalog.tables.values():  # tables the source knows, empty ones included
            self.catalog.add_table(spec)
        head = {"journal": fmt.FORMAT, "version": fmt.VERSION, "source": self.source,
                "created": self.created, "compression": {"codec": self.codec, "level": self.level}}
        first = fmt.catalog_to_json(self.catalog)
        fmt.write_atomic(self.journal, (json.dumps(head) + "\n" + json.dumps(first) + "\n").encode())

    def write(self, batch: TableBatch) -> None:
        spec = batch.spec
        if batch.position is not None:  # recorded with the run: the positions it reached
            self._positions[batch.partition] = batch.position
        known = self.catalog.tables.get((spec.database, spec.name))
        if self.catalog.add_table(spec):
            self._new_tables.append(spec)
        elif known is not None and spec.stable is not None and known.tag_values != spec.tag_values:
            self.catalog.tables[(spec.database, spec.name)] = spec  # tags changed (a subscription)
            self._new_tables.append(spec)
        if spec.stable is not None:
            self._dirty_stables.add((spec.database, spec.stable))
        part = batch.partition
        if batch.position is None:  # past its partition's checkpoint until a batch with a position comes
            self._held.setdefault(part, []).append(batch)
            self._held_rows[part] = self._held_rows.get(part, 0) + batch.num_rows
            if self._held_rows[part] > max(self.file_rows, POSITION_EVERY):  # a source without positions: bounded
                self._settle(part)
            return
        self._settle(part)
        self._add(batch)

    def _settle(self, partition: str) -> None:
        """The partition's held batches go into files with the next flush."""
        self._held_rows.pop(partition, None)
        for b in self._held.pop(partition, ()):
            self._add(b)

    def _add(self, batch: TableBatch) -> None:
        spec = batch.spec
        key = (spec.database, spec.group)
        self._specs[key] = spec
        self._buffer.setdefault(key, {}).setdefault(spec.name, []).append(batch.data)
        self._rows += batch.num_rows
        self._bytes += batch.nbytes

    def wants_flush(self) -> bool:
        return self._rows >= self.file_rows or self._bytes >= self.file_bytes

    def flush(self, checkpoint: dict[str, Any] | None = None) -> None:
        """Files hold exactly the rows up to ``checkpoint``: batches after a partition's last
        position stay buffered (held) until a later one carries a position or the partition ends,
        so a resumed run re-reads none of them into a second file."""
        for part, at in (checkpoint or {}).items():
            if at == DONE:
                self._settle(part)
        if checkpoint is None:  # the end of a run: nothing more will come
            for part in list(self._held):
                self._settle(part)
        new_files = []
        for key, parts in self._buffer.items():
            spec = self._specs[key]
            if spec.stable is not None:  # one schema per file: the super table's, widened as data came
                st = self.catalog.stables[(spec.database, spec.stable)]
                if st.columns != spec.columns:
                    spec = spec.replace(columns=st.columns)
                parts = {t: [b if b.schema.equals(spec.schema) else fit(b, spec) for b in bs]
                         for t, bs in parts.items()}
            seq = len(self.files) + len(new_files)
            name = f"{seq:06d}" if self.part is None else f"{self.part}-{seq:06d}"
            rel = f"{fmt.DATA}/{safe_name(key[0] or '_')}/{safe_name(key[1])}/{name}.arrow"
            enc = fmt.encode_file(rel, key, spec.stable, list(parts.items()), spec.precision, self.ipc)
            fmt.write_atomic(self.root / rel, enc.buffer)
            enc.entry["run"] = self.run
            new_files.append(enc.entry)
        if not new_files and checkpoint is None:
            return
        for d in {(self.root / f["path"]).parent for f in new_files}:
            sync_path(d)
        line = {
            "files": new_files,
            "stables": [self.catalog.stables[k].to_json() for k in sorted(self._dirty_stables, key=str)],
            "tables": [self.catalog.tables[(t.database, t.name)].to_json() for t in self._new_tables],
            "checkpoint": checkpoint,
        }
        with open(self.journal, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.files.extend(new_files)
        self._run_rows += sum(f["rows"] for f in new_files)
        self._buffer.clear()
        self._specs.clear()
        self._new_tables.clear()
        self._dirty_stables.clear()
        self._rows = self._bytes = 0

    def close(self) -> None:
        if self._held:
            self.flush()
        if self.part is not None:
            return  # the driver writes the manifest once every share is back
        taken = len(self._merged)
        doc, _ = self._take_parts()
        if len(self._merged) > taken:
            self.catalog.merge(fmt.catalog_from_json(doc, str(self.root / fmt.PARTS)))
            self._remove_orphans()  # files of flushes a dying worker did not finish
        run = {"run": self.run, "started": getattr(self, "started", self.created), "completed": fmt.now_iso(),
               "rows": self._run_rows, "files": sum(1 for f in self.files if f.get("run", 1) == self.run),
               "positions": self._positions}
        manifest = fmt.new_manifest(self.source, self.codec, self.level, self.created,
                                    self.catalog, self.files, [*self.runs, run])
        fmt.write_atomic(self.root / fmt.MANIFEST,
                         json.dumps(manifest, indent=1, ensure_ascii=False).encode())
        sync_path(self.root)
        self.journal.unlink(missing_ok=True)
        shutil.rmtree(self.root / fmt.PARTS, ignore_errors=True)
        self._unlock()

    def abort(self) -> None:
        self._buffer.clear()  # unflushed rows are not in the journal; a rerun reads them again
        self._held.clear()
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is None:
            return
        fmt.unlock(self.root, self._lock)
        self._lock = None
        if self._made_root and not any(self.root.iterdir()):  # a run that wrote nothing leaves nothing
            self.root.rmdir()
