"""What the broker sources (MQTT, Kafka) share: micro-batching, parsing through the compiled
``--parser``, and at-least-once delivery — each batch gets a sequence number as its position, and
the broker-side acknowledgement (offset commit, PUBACK) of a batch is released only when the
pipeline reports that position durable in the sink."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...dsn import Dsn
from ...model import Catalog, TableBatch
from ...options import Options
from ...quality import Rejects
from ...source import Source
from ...transform.messages import MessageParser, Messages
from .acks import Pending


class MessageSource(Source):
    default_table = "messages"

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        self.batch_size = self.config["batch_size"]
        self.batch_timeout = self.config["batch_timeout"]
        self.parser = MessageParser(options.parser, self.config["database"], dsn.masked(), self.default_table)
        self._lock = threading.Lock()
        self._pending: Pending[Any] = Pending()
        self._stop = threading.Event()
        self._starved = threading.Event()
        self._pem_files: list[Path] = []

    def pem_path(self, key: str) -> str | None:
        """A TLS parameter (``ca``, ``cert``, ``cert_key``) as the file path clients take: a path as
        given, or PEM text (inline or from ``@file``) written to a private temporary file that
        :meth:`remove_pem_files` deletes."""
        text = self.config[key]
        if not text:
            return None
        if not text.lstrip().startswith("-----"):
            return str(text)
        fh = tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False)  # mode 0600
        with fh:
            fh.write(text)
        self._pem_files.append(Path(fh.name))
        return fh.name

    def remove_pem_files(self) -> None:
        for f in self._pem_files:
            f.unlink(missing_ok=True)
        self._pem_files.clear()

    def catalog(self) -> Catalog:
        cat = Catalog()
        for st in self.parser.builder.stables():
            cat.add_stable(st)
        return cat

    def emit(self, partition: str, msgs: Messages, token: Any) -> list[TableBatch]:
        """Parse one micro-batch; ``token`` is what acknowledging it takes (offsets, message ids)."""
        seq = self._pending.add(partition, token)
        return self.parser.parse(msgs, self.rejects, partition, seq)

    def acknowledge(self, checkpoint: dict[str, Any]) -> None:
        for partition, ready in self._pending.durable(checkpoint).items():
            self.release(partition, ready)
        self._starved.clear()

    def wants_flush(self) -> bool:
        return self._starved.is_set()

    def unacknowledged(self) -> bool:
        return self._pending.any()

    def release(self, partition: str, tokens: list[Any]) -> None:
        """Acknowledge to the broker (runs on the pipeline's thread)."""

    def batches(self, partition: str, polls: Iterator[tuple[Messages, Any] | None]) -> Iterator[TableBatch]:
        for item in polls:
            if item is None or self._stop.is_set():
                continue
            msgs, token = item
            yield from self.emit(partition, msgs, token)

    def close(self) -> None:
        self._stop.set()
