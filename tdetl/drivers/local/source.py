"""``local:<dir>`` as a source: restore from a tdetl backup.

Every selected file's checksum is verified before the first row is handed on (so a corrupt backup
writes nothing), and again as each file is read. Each file is a partition for ``--jobs``.
Params: ``stables=`` / ``tables=`` (comma lists or ``@file``) select part of a backup.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...capabilities import SourceCapabilities
from ...dsn import Dsn
from ...errors import BackupError
from ...model import Catalog, TableBatch, fit
from ...options import Options
from ...params import Param, Spec, instant_ns
from ...quality import Rejects
from ...source import SCHEMA_TRAVELS, Inventory, Source, TableStats, count_into
from . import backup as fmt


class LocalSource(Source):
    capabilities = SourceCapabilities(partitions="files", local_files=True)
    quality_defaults = SCHEMA_TRAVELS
    spec = Spec(Param("stables", "list", help="restore only these super tables"),
                Param("tables", "list", help="restore only these tables: t1,stable.t2 or @file"),
                Param("until", "text", None, "restore the runs up to this one: a run number or an RFC 3339 time"
                      " (runs completed by then)"))

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        self.root: Path = dsn.path
        self.manifest = fmt.read_manifest(self.root)
        self.runs = fmt.runs_of(self.manifest)
        self.last_run = self._until(self.config["until"], dsn.masked())
        self._catalog = fmt.catalog_from_json(self.manifest, str(self.root / fmt.MANIFEST))
        self.want_stables = set(self.config["stables"])
        self.want_tables = set(self.config["tables"])
        self._verified = False
        known_st = {st.name for st in self._catalog.stables.values()}
        known_t = {t.name for t in self._catalog.tables.values()}
        for name in self.want_stables - known_st:
            raise BackupError(f"{dsn.masked()}: super table {name!r} is not in this backup")
        for name in {t.split(".")[-1] for t in self.want_tables} - known_t:
            raise BackupError(f"{dsn.masked()}: table {name!r} is not in this backup")

    def _until(self, text: str | None, where: str) -> int:
        """The last run to restore: all of them, a run number, or those completed by a time."""
        if not text:
            return len(self.runs)
        if text.strip().isdigit():
            n = int(text)
            if not 1 <= n <= len(self.runs):
                raise BackupError(f"{where}: until={text}: the backup has runs 1..{len(self.runs)}")
            return n
        try:
            limit = instant_ns(text)
        except ValueError as e:
            raise BackupError(f"{where}: until={text!r} is neither a run number nor a time: {e}") from None
        done = [r["run"] for r in self.runs if r.get("completed") and instant_ns(r["completed"]) <= limit]
        if not done:
            raise BackupError(f"{where}: until={text}: no run of this backup had completed by then"
                              f" (the first completed {self.runs[0].get('completed')})")
        return max(done)

    def _wanted(self, name: str, stable: str | None) -> bool:
        if not self.want_stables and not self.want_tables:
            return True
        if stable is not None and stable in self.want_stables:
            return True
        return name in self.want_tables or (stable is not None and f"{stable}.{name}" in self.want_tables)

    def _files(self) -> list[dict[str, Any]]:
        return [f for f in self.manifest["files"] if f.get("run", 1) <= self.last_run
                and any(self._wanted(name, f.get("stable")) for name, _, _ in f["tables"])]

    def catalog(self) -> Catalog:
        if not self._verified:
            for entry in self._files():  # all of them before any data moves
                fmt.read_verified(self.root, entry)
            self._verified = True
        if not self.want_stables and not self.want_tables:
            return self._catalog
        part = Catalog(dict(self._catalog.databases))
        for key, spec in self._catalog.tables.items():
            if self._wanted(spec.name, spec.stable):
                part.tables[key] = spec
                if spec.stable is not None:
                    part.stables[(spec.database, spec.stable)] = self._catalog.stables[(spec.database, spec.stable)]
        for key, st in self._catalog.stables.items():
            if st.name in self.want_stables:
                part.stables[key] = st
        return part

    def inventory(self) -> Inventory:
        """From the manifest alone: ``inspect`` reads no data file."""
        stats: TableStats = {}
        for f in self.manifest["files"]:
            spans = f.get("table_ts") or [[f["min_ts"], f["max_ts"]]] * len(f["tables"])  # older: per file
            for (name, _, count), (lo, hi) in zip(f["tables"], spans):
                count_into(stats, (f.get("database"), name), count, lo, hi)
        return Inventory(self._catalog, stats, self.runs)

    def partitions(self) -> list[str]:
        """A file each; a backup of several runs goes by group (super table), its files in run
        order, so a row a later run rewrote lands after its earlier value."""
        if self.last_run <= 1:
            return [f["path"] for f in self._files()]
        groups: dict[str, None] = {}
        for f in self._files():
            groups.setdefault(f"group:{f.get('database') or ''}/{f['group']}")
        return list(groups)

    def local_files(self) -> list[Path]:
        return [self.root / fmt.MANIFEST, *(self.root / f["path"] for f in self._files())]

    def read(self, partition: str, start: Any = None) -> Iterator[TableBatch]:
        if partition.startswith("group:"):
            for f in self._files():
                if f"group:{f.get('database') or ''}/{f['group']}" == partition:
                    yield from self._read_file(f["path"], partition)
            return
        yield from self._read_file(partition, partition)

    def _read_file(self, path: str, partition: str) -> Iterator[TableBatch]:
        entry = next(f for f in self.manifest["files"] if f["path"] == path)
        table = fmt.open_verified(self.root, entry)
        db = entry.get("database")
        for name, offset, count in entry["tables"]:
            spec = self._catalog.tables.get((db, name))
            if spec is None:
                raise BackupError(f"{self.root / path}: table {name!r} is not in the manifest")
            if not self._wanted(name, spec.stable):
                continue
            if not set(table.schema.names) <= set(spec.schema.names):  # fit() adds and casts, it must not drop
                raise BackupError(f"{self.root / path}: the file holds columns {str(table.schema.names)[:200]},"
                                  f" the manifest says table {name!r} has {str(spec.schema.names)[:200]}")
            for batch in table.slice(offset, count).to_batches():  # zero-copy slices
                if batch.num_rows:
                    yield TableBatch(spec, batch if batch.schema.equals(spec.schema) else fit(batch, spec),
                                     partition, None)
