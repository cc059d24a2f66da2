"""``kafka://[user:pass@]host:9092[/]?group=...&topics=...`` as a source (kafka-python).

``--jobs N`` runs N consumers in the group (one per partition of the pipeline). Offsets are never
auto-committed: a batch's offsets are committed, by the consumer's own thread on its next poll (or
at the end), only after the sink reports the batch durable — at-least-once, and TDengine keeps one
row per table and timestamp, so a replay after a crash rewrites the same rows.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from collections.abc import Iterator
from typing import Any, ClassVar

from ...capabilities import SourceCapabilities
from ...dsn import Dsn
from ...errors import DsnError, SourceError
from ...model import TableBatch
from ...options import Options
from ...params import DATABASE, TLS, Param, Spec, batching
from ...progress import Lag
from ...quality import Rejects
from ...transform.messages import Messages
from ..common.messages import MessageSource
from . import quiet_client_log

log = logging.getLogger("tdetl.kafka")
_TP = re.compile(r"^([^:]+):(\d+)(?:\.\.(\d+))?$")


def parse_topic_partitions(text: str, where: str) -> list[tuple[str, int]]:
    """``tp1:0..2,tp2:1`` -> [(tp1,0),(tp1,1),(tp1,2),(tp2,1)]."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = _TP.match(part)
        if not m:
            raise DsnError(f"{where}: topic_partitions item {part!r} is not <topic>:<n> or <topic>:<a>..<b>")
        lo = int(m.group(2))
        hi = int(m.group(3)) if m.group(3) else lo
        if hi < lo:
            raise DsnError(f"{where}: topic_partitions item {part!r} has an empty range")
        out += [(m.group(1), p) for p in range(lo, hi + 1)]
    return out


def parse_fallback(text: str, where: str) -> tuple[str, int | None]:
    """``Earliest``, ``Latest`` or ``ByTime(<ms>)``."""
    t = text.strip()
    if t.lower() in ("earliest", "latest"):
        return t.lower(), None
    m = re.fullmatch(r"(?i)bytime\((\d+)\)", t)
    if m:
        return "bytime", int(m.group(1))
    raise DsnError(f"{where}: fallback_offset={text!r} must be Earliest, Latest or ByTime(<ms>)")


class KafkaSource(MessageSource):
    capabilities = SourceCapabilities(parser=True, partitions="consumers", consumer=True)
    requires: ClassVar[dict[str, str]] = {"kafka": "kafka"}  # module -> the extra that installs it
    spec = Spec(
        Param("topics", "list", help="topics to subscribe to"),
        Param("topic_partitions", "text", "", help="assign instead of subscribing: tp1:0..2,tp2:1"),
        Param("group", "text", "tdetl", help="consumer group", aliases=("group.id",)),
        Param("fallback_offset", "text", "Earliest",
              help="where a group without committed offsets starts: Earliest, Latest or ByTime(<ms>)"),
        Param("timeout", "duration", 0.5, "stop after this long without messages", unit="ms", never=True),
        Param("session_timeout", "duration", 10.0, "consumer group session timeout"),
        Param("client_id", "text", None, "client id (default tdetl-<consumer>)"),
        Param("use_ssl", "flag", False, "TLS to the broker"), *TLS,
        Param("sasl_mechanism", "choice", None, "SASL with the DSN's user/password (default PLAIN when a user"
              " is given)", choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")),
        *batching(10_000, 1.0, "messages"), DATABASE)
    default_table = "kafka_data"

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        where = dsn.masked()
        self.where = where
        self.servers = f"{dsn.host or 'localhost'}:{dsn.port or 9092}"
        cfg = self.config
        self.topics = list(cfg["topics"])
        self.assigned = parse_topic_partitions(cfg["topic_partitions"] or "", where)
        if not self.topics and not self.assigned:
            raise DsnError(f"{where}: name what to read: topics=<a,b> or topic_partitions=<t>:<0..2>")
        self.group = cfg["group"] or "tdetl"
        self.fallback = parse_fallback(cfg["fallback_offset"] or "Earliest", where)
        self.idle: float | None = cfg["timeout"]
        self.session_ms = int(cfg["session_timeout"] * 1000)
        self.use_ssl = cfg["use_ssl"]
        self.sasl = cfg["sasl_mechanism"] or ("PLAIN" if dsn.user else None)
        self._consumers: dict[str, Any] = {}
        self._commits: dict[str, dict[Any, Any]] = {}
        self._behind: dict[tuple[str, int], int] = {}  # (topic, partition) -> messages behind the high watermark
        self._unplaced: dict[int, set[Any]] = {}  # per consumer: assigned, not yet seeked (ByTime)

    def partitions(self) -> list[str]:
        if self.assigned:
            return ["consumer-0"]  # assigned partitions: one consumer, no group rebalancing
        return [f"consumer-{i}" for i in range(max(1, self.options.jobs or 1))]

    def _consumer(self, partition: str) -> Any:
        from kafka import KafkaConsumer

        kwargs: dict[str, Any] = dict(
            bootstrap_servers=self.servers, group_id=self.group, enable_auto_commit=False,
            client_id=self.config["client_id"] or f"tdetl-{partition}",
            auto_offset_reset="latest" if self.fallback[0] == "latest" else "earliest",
            session_timeout_ms=self.session_ms, heartbeat_interval_ms=max(100, self.session_ms // 4),
            max_poll_records=self.batch_size, consumer_timeout_ms=float("inf"))
        if self.use_ssl or self.sasl:
            proto = ("SASL_" if self.sasl else "") + ("SSL" if self.use_ssl else "PLAINTEXT")
            kwargs["security_protocol"] = proto
        if self.use_ssl:
            kwargs.update(ssl_cafile=self.pem_path("ca"), ssl_certfile=self.pem_path("cert"),
                          ssl_keyfile=self.pem_path("cert_key"), ssl_check_hostname=True)
        if self.sasl:
            kwargs.update(sasl_mechanism=self.sasl.upper(), sasl_plain_username=self.dsn.user or "",
                          sasl_plain_password=self.dsn.password or "")
        quiet_client_log()
        try:
            consumer = KafkaConsumer(**kwargs)
        except (ssl.SSLError, OSError) as e:
            raise SourceError(f"{self.where}: cannot set up the consumer: {e}") from None
        except Exception as e:  # kafka.errors.* (NoBrokersAvailable, ...)
            raise SourceError(f"{self.where}: {type(e).__name__}: {e}") from None
        if self.assigned:
            from kafka import TopicPartition

            tps = [TopicPartition(t, p) for t, p in self.assigned]
            consumer.assign(tps)
            self._fallback(consumer, tps)
        else:
            from kafka import ConsumerRebalanceListener

            source = self

            class Listener(ConsumerRebalanceListener):
                def on_partitions_revoked(self, revoked: Any) -> None:
                    pass

                def on_partitions_assigned(self, assigned: Any) -> None:
                    # this runs on kafka-python's IO thread, which must not block (committed and
                    # offsets_for_times do): hold the partitions until the polling thread places them
                    if source.fallback[0] == "bytime" and assigned:
                        consumer.pause(*assigned)
                        with source._lock:
                            source._unplaced.setdefault(id(consumer), set()).update(assigned)

            consumer.subscribe(self.topics, listener=Listener())
        return consumer

    def _fallback(self, consumer: Any, tps: list[Any]) -> None:
        """Where partitions without a committed offset start: ByTime seeks by timestamp
        (Earliest/Latest are the client's auto_offset_reset)."""
        kind, ms = self.fallback
        if kind != "bytime" or not tps:
            return
        fresh = [tp for tp in tps if consumer.committed(tp) is None]
        if not fresh:
            return
        found = consumer.offsets_for_times({tp: ms for tp in fresh})
        for tp in fresh:
            hit = found.get(tp)
            if hit is None:
                consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, hit.offset)

    def read(self, partition: str, start: Any = None) -> Iterator[TableBatch]:
        consumer = self._consumer(partition)
        with self._lock:
            self._consumers[partition] = consumer
        yield from self.batches(partition, self._polls(partition, consumer))

    def _place(self, consumer: Any) -> None:
        """Seek partitions the group just gave us (held paused by the listener), then resume them."""
        with self._lock:
            todo = self._unplaced.pop(id(consumer), set())
        todo &= consumer.assignment()
        if todo:
            self._fallback(consumer, sorted(todo))
            consumer.resume(*todo)

    def _polls(self, partition: str, consumer: Any) -> Iterator[tuple[Messages, Any] | None]:
        from kafka.structs import OffsetAndMetadata

        last_data = time.monotonic()
        while not self._stop.is_set():
            self._commit(partition, consumer)
            self._place(consumer)
            got = consumer.poll(timeout_ms=int(self.batch_timeout * 1000), max_records=self.batch_size)
            records = [r for recs in got.values() for r in recs]
            if not records:
                if not consumer.assignment():  # still joining the group: the idle clock has not started
                    last_data = time.monotonic()
                elif self.idle is not None and time.monotonic() - last_data >= self.idle:
                    return
                yield None
                continue
            last_data = time.monotonic()
            msgs = Messages([r.value or b"" for r in records], [r.topic for r in records],
                            [r.partition for r in records], [r.offset for r in records],
                            [r.key for r in records], [r.timestamp for r in records])
            offsets: dict[Any, Any] = {}
            for tp, recs in got.items():
                offsets[tp] = OffsetAndMetadata(recs[-1].offset + 1, "", -1)
            self._note_lag(consumer, offsets)
            yield msgs, offsets

    def _note_lag(self, consumer: Any, offsets: dict[Any, Any]) -> None:
        """Messages behind each partition's high watermark (which the fetch just reported), kept by
        the polling thread: kafka-python's consumer is not to be used from another thread."""
        with self._lock:
            for tp, om in offsets.items():
                high = consumer.highwater(tp)
                if high is not None:
                    self._behind[(tp.topic, tp.partition)] = max(0, high - om.offset)

    def lag(self) -> Lag | None:
        with self._lock:
            return Lag(float(sum(self._behind.values())), "offsets") if self._behind else None

    def release(self, partition: str, tokens: list[Any]) -> None:
        merged: dict[Any, Any] = {}
        for offsets in tokens:
            for tp, om in offsets.items():
                if tp not in merged or om.offset > merged[tp].offset:
                    merged[tp] = om
        with self._lock:
            self._commits.setdefault(partition, {}).update(merged)

    def _commit(self, partition: str, consumer: Any) -> None:
        with self._lock:
            todo = self._commits.pop(partition, None)
        if todo:
            try:
                consumer.commit(todo)
                log.debug("%s committed %s", partition, {f"{tp.topic}/{tp.partition}": o.offset
                                                         for tp, o in todo.items()})
            except Exception as e:  # a rebalance took the partition: its new owner re-reads
                log.warning("%s: offset commit failed (%s); those messages will be read again", partition, e)

    def close(self) -> None:
        super().close()
        with self._lock:
            consumers = dict(self._consumers)
        for partition, consumer in consumers.items():
            self._commit(partition, consumer)
            try:
                consumer.close(autocommit=False)
            except Exception:  # closing is best effort
                pass
        self.remove_pem_files()
