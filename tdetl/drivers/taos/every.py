"""``taos://host:port`` with no database as a target: every database the source names goes into its
namesake on the server (a restore of a backup of every database, a sync of a whole server), each
through a taos target of its own, made when the catalog or a batch first names the database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...capabilities import SinkCapabilities
from ...dsn import Dsn
from ...errors import SinkError
from ...model import Catalog, Database, TableBatch
from ...options import Options
from ...params import Spec
from ...quality import TARGET_SITUATIONS, Rejects
from ...sink import Sink


class EveryDatabase(Sink):
    capabilities = SinkCapabilities(upserts=True, situations=TARGET_SITUATIONS)

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None, spec: Spec,
                 make: Callable[[Dsn, Options, Rejects], Sink]) -> None:
        self.spec = spec  # the taos target's parameters apply to each database's target
        super().__init__(dsn, options, rejects)
        self._make = make
        self.sinks: dict[str, Sink] = {}

    def _sink(self, db: str, catalog: Catalog) -> Sink:
        sink = self.sinks.get(db)
        if sink is None:
            sink = self.sinks[db] = self._make(self.dsn.with_object(db), self.options, self.rejects)
            sink.prepare(catalog)
        return sink

    def prepare(self, catalog: Catalog) -> None:
        for db in sorted(catalog.databases):
            self._sink(db, Catalog({db: catalog.databases[db]},
                                   {k: v for k, v in catalog.stables.items() if k[0] == db},
                                   {k: v for k, v in catalog.tables.items() if k[0] == db}))

    def write(self, batch: TableBatch) -> None:
        db = batch.spec.database
        if not db:
            raise SinkError(f"{self.dsn.masked()}: table {batch.spec.name!r} belongs to no database: name the"
                            " target database, e.g. taos://host:6030/<db>")
        self._sink(db, Catalog({db: Database(db, batch.spec.precision)})).write(batch)

    def wants_flush(self) -> bool:
        return any(s.wants_flush() for s in self.sinks.values())

    def flush(self, checkpoint: dict[str, Any] | None = None) -> None:
        for s in self.sinks.values():
            s.flush(checkpoint)

    def close(self) -> None:
        for s in self.sinks.values():
            s.close()

    def pending(self) -> tuple[int, int]:
        counts = [s.pending() for s in self.sinks.values()]
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    def abort(self) -> None:
        for s in self.sinks.values():
            s.abort()
