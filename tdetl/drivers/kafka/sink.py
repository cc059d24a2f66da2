"""``kafka://host:9092?topic=plant.{stable}&key={tbname}&acks=all`` as a target: publish what the
source reads onward (taosX's data publisher). Messages are rendered by
:mod:`tdetl.drivers.common.publish`; a flush returns only when the broker acknowledged every message
of it (``acks=all`` by default), so a source's offsets are committed after that and never before."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from ...capabilities import SinkCapabilities
from ...dsn import Dsn
from ...errors import SinkError
from ...model import Catalog, TableBatch
from ...options import Options
from ...params import Param, Spec
from ...quality import Rejects
from ..common.publish import PUBLISH, Publisher
from . import quiet_client_log

log = logging.getLogger("tdetl.kafka")


class KafkaSink(Publisher):
    capabilities = SinkCapabilities()  # each message once more after a crash: at-least-once
    requires: ClassVar[dict[str, str]] = {"kafka": "kafka"}  # module -> the extra that installs it
    spec = Spec(
        *PUBLISH,
        Param("key", "text", None, "message key template, e.g. {tbname} (default: no key)"),
        Param("acks", "choice", "all", "acknowledgements the broker gives before a send counts",
              choices=("all", "1", "0")),
        Param("compression", "choice", "none", "message compression", choices=("none", "gzip", "lz4", "zstd")),
        Param("linger", "duration", 0.005, "how long the producer gathers messages into one request"),
        Param("client_id", "text", None, "client id (default tdetl-pub)"),
        Param("request_timeout", "duration", 30.0, "how long a send may wait for the broker"),
    )

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        self._producer: Any = None
        self._futures: list[Any] = []

    def prepare(self, catalog: Catalog) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        cfg = self.config
        acks: Any = "all" if cfg["acks"] == "all" else int(cfg["acks"])
        quiet_client_log()
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=f"{self.dsn.host}:{self.dsn.port or 9092}", acks=acks,
                compression_type=None if cfg["compression"] == "none" else cfg["compression"],
                linger_ms=int(cfg["linger"] * 1000), client_id=cfg["client_id"] or "tdetl-pub",
                request_timeout_ms=int(cfg["request_timeout"] * 1000), retries=2**31 - 1,
                max_in_flight_requests_per_connection=1)  # retries keep the order
        except (KafkaError, OSError) as e:
            raise SinkError(f"{self.where}: cannot reach the broker: {e}") from None

    def write(self, batch: TableBatch) -> None:
        for m in self.render.messages(batch):
            self._futures.append(self._producer.send(m.topic, m.payload, key=m.key))
            self.published += 1

    def wants_flush(self) -> bool:
        return len(self._futures) >= 50_000

    def flush(self, checkpoint: dict[str, Any] | None = None) -> None:
        """Back only when the broker acknowledged every message sent so far."""
        if not self._futures:
            return
        self._producer.flush(timeout=self.config["request_timeout"] * 4)
        failed = next((f for f in self._futures if not f.is_done or f.failed()), None)
        count = len(self._futures)
        self._futures.clear()
        if failed is not None:
            why = failed.exception if failed.is_done else "no answer"
            raise SinkError(f"{self.where}: the broker did not take {count} messages ({why}); what came after the"
                            " last acknowledged flush is not committed at the source")

    def _forget(self) -> None:
        self._futures.clear()

    def _disconnect(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None
