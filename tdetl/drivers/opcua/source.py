"""OPC UA as a source (``opcua://[user:pass@]host:4840[/path]?ua.nodes=...`` or ``opc+ua://``).

An asyncua collector runs in its own thread: ``concurrent`` sessions each take a share of the points
and subscribe to data changes (``mode=subscribe``, the default; servers that refuse subscriptions
are polled) or read them every ``interval`` seconds (``mode=observe``; an unchanged reading is not
repeated). Sessions reconnect with back-off and re-create their subscriptions (asyncua's
auto-reconnect), so values after a server restart keep coming. Notifications gather into batches of
``batch_size`` points or ``batch_timeout`` seconds, built column-wise per point into child-table
batches (microsecond precision). ``timeout`` ends the run after that long without a notification.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ...capabilities import SourceCapabilities
from ...dsn import Dsn
from ...errors import DsnError, SourceError
from ...model import Catalog, Column, TableBatch, TableSpec, conform
from ...options import Options
from ...params import DATABASE, IDLE, Param, Spec, batching
from ...polars_types import sized
from ...quality import Rejects
from ...source import Source
from ...types import TDType
from ..common.batching import Inbox
from .config import VARIANT_TYPES, Point, points_from_csv, points_from_nodes

log = logging.getLogger(__name__)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
US = dt.timedelta(microseconds=1)
POLICIES = ("None", "Basic128Rsa15", "Basic256", "Basic256Sha256")
MODES = ("None", "Sign", "SignAndEncrypt")


def _us(t: dt.datetime | None) -> int | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return (t - EPOCH) // US


class OpcUaSource(Source):
    requires: ClassVar[dict[str, str]] = {"asyncua": "opcua"}  # module -> the extra that installs it
    protocols = (None, "ua", "da")
    capabilities = SourceCapabilities(partitions="sessions", consumer=True)  # each reading until stopped
    spec = Spec(
        Param("ua.nodes", "text", None, "points: <nodeid>::<code>[,...] (with opc_table_config)"),
        Param("opc_table_config", "file", None, 'JSON {"stable_prefix", "column_configs": [{"column_name":'
              ' received_time|original_time|value|quality, "column_type", "column_alias", "is_primary_key"}]}'),
        Param("csv_config_file", "file", None, "points from a CSV (@file): point_id, tbname, stable, enabled, ts_col,"
              " received_time_col, value_col, quality_col, type, tag::<type>::<name>"),
        Param("interval", "duration", 1.0, "publishing interval, or the poll interval"),
        Param("mode", "choice", "subscribe", "data-change subscriptions (polling when refused), or polling",
              choices=("subscribe", "observe")),
        Param("concurrent", "int", 1, "sessions sharing the points", minimum=1),
        *batching(100, 20.0, "points"),
        Param("connect_timeout", "duration", 10.0, "connect timeout"),
        Param("request_timeout", "duration", 10.0, "request timeout"),
        Param("security_policy", "choice", "None", "security policy", choices=POLICIES),
        Param("security_mode", "choice", "None", "security mode", choices=MODES),
        Param("certificate", "text", None, "client certificate (path)"),
        Param("private_key", "text", None, "client private key (path)"),
        Param("debug", "flag", False, "log asyncua's chatter too"),
        Param("enable", "flag", False, "keep the raw data (needs path and keep)"),
        Param("path", "text", None, "directory for raw data files opcua-<day>.jsonl"),
        Param("keep", "int", None, "days of raw data kept", minimum=1),
        IDLE, DATABASE)

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        where = self.where = dsn.masked()
        if (dsn.driver == "opc") != (dsn.protocol == "ua") or dsn.protocol == "da":
            raise DsnError(f"{where}: only OPC UA is read (opc+ua:// or opcua://); OPC DA needs Windows")
        super().__init__(dsn, options, rejects)
        cfg = self.config
        self.interval = cfg["interval"]
        if self.interval <= 0:
            raise DsnError(f"{where}: interval must be more than 0 seconds")
        self.concurrent = cfg["concurrent"]
        self.batch_size = cfg["batch_size"]
        self.batch_timeout = cfg["batch_timeout"]
        self.connect_timeout = cfg["connect_timeout"]
        self.request_timeout = cfg["request_timeout"]
        self.idle: float | None = cfg["timeout"]
        self.mode = cfg["mode"]
        self.database = cfg["database"]
        self.policy = cfg["security_policy"]
        self.security_mode = cfg["security_mode"]
        if (self.policy == "None") != (self.security_mode == "None"):
            raise DsnError(f"{where}: security_policy={self.policy} and security_mode={self.security_mode}:"
                           f" both must be None, or a policy with Sign or SignAndEncrypt")
        self.certificate = cfg["certificate"] or None
        self.private_key = cfg["private_key"] or None
        if self.policy != "None":
            for key, value in (("certificate", self.certificate), ("private_key", self.private_key)):
                if not value:
                    raise DsnError(f"{where}: security_mode={self.security_mode} needs {key}=<path to .pem/.der>")
                if not Path(value).is_file():
                    raise DsnError(f"{where}: {key}={value!r} is not a file")
        if cfg["debug"]:
            log.setLevel(logging.DEBUG)
            logging.getLogger("asyncua").setLevel(logging.INFO)
        else:  # asyncua logs every reconnect attempt and revised setting; tdetl says what matters
            logging.getLogger("asyncua").setLevel(logging.CRITICAL)
        self.raw: Path | None = None
        self.keep_days = 0
        if cfg["enable"]:
            if not cfg["path"] or not cfg["keep"]:
                raise DsnError(f"{where}: enable=true (keep raw data) needs path=<dir> and keep=<days>")
            self.raw = Path(cfg["path"])
            self.keep_days = cfg["keep"]
        if cfg["csv_config_file"]:
            self.points = points_from_csv(cfg["csv_config_file"], where)
        elif cfg["ua.nodes"]:
            self.points = points_from_nodes(cfg["ua.nodes"], cfg["opc_table_config"], where)
        else:
            raise DsnError(f"{where}: name the points with csv_config_file=@<file> or ua.nodes=<nodeid>::<code>,..."
                           f" with opc_table_config")
        codes = [p.code for p in self.points]
        dup = next((c for c in codes if codes.count(c) > 1), None)
        if dup:
            raise DsnError(f"{where}: two points write child table {dup!r}")
        path = f"/{dsn.object}" if dsn.object else "/"
        self.url = f"opc.tcp://{dsn.host or 'localhost'}:{dsn.port or 4840}{path}"
        self.types: list[TDType] = []
        self.specs: list[TableSpec] = []
        self._stop = threading.Event()
        self._collector: Collector | None = None

    # -- connection -------------------------------------------------------------------------------

    async def connect(self) -> Any:
        from asyncua import Client

        client = Client(self.url, timeout=self.request_timeout, auto_reconnect=True, watchdog_intervall=1.0,
                        reconnect_max_delay=10.0)
        async def lost(e: Exception) -> None:
            log.warning("%s: connection to %s lost (%s); reconnecting", self.where, self.url, _why(e))

        client.connection_lost_callback = lost
        if self.dsn.user:
            client.set_user(self.dsn.user)
        if self.dsn.password:
            client.set_password(self.dsn.password)
        if self.policy != "None":
            from asyncua import ua
            from asyncua.crypto import security_policies, uacrypto

            cert = await uacrypto.load_certificate(self.certificate)
            uris = _cert_uris(cert)
            if uris:
                client.application_uri = uris[0]  # the server checks the certificate names the client
            try:
                await asyncio.wait_for(client.set_security(
                    getattr(security_policies, f"SecurityPolicy{self.policy}"), self.certificate, self.private_key,
                    mode=getattr(ua.MessageSecurityMode, self.security_mode)), self.connect_timeout)
            except Exception as e:
                raise SourceError(f"{self.where}: OPC UA server at {self.url} offers no {self.policy}"
                                  f" {self.security_mode} endpoint: {_why(e)}") from None
        try:
            await asyncio.wait_for(client.connect(), self.connect_timeout)
        except Exception as e:
            raise SourceError(f"{self.where}: cannot connect to OPC UA server at {self.url}: {_why(e)}") from None
        return client

    # -- schema -----------------------------------------------------------------------------------

    async def _read_types(self) -> list[TDType]:
        from asyncua import ua

        client = await self.connect()
        try:
            nodes = []
            for p in self.points:
                try:
                    nodes.append(client.get_node(p.node_id))
                except Exception:
                    raise DsnError(f"{self.where}: {p.where}: {p.node_id!r} is not an OPC UA node id"
                                   f" (e.g. ns=2;i=2 or ns=2;s=Plant.Temp)") from None
            values = await client.read_attributes(nodes, ua.AttributeIds.Value)
            kinds: list[TDType] = []
            for p, v in zip(self.points, values):
                if not v.StatusCode.is_good() and v.StatusCode.name.startswith("BadNodeId"):
                    raise SourceError(f"{self.where}: {p.where}: the server has no node {p.node_id}"
                                      f" ({v.StatusCode.name})")
                if p.value_type is not None:
                    kinds.append(p.value_type)
                    continue
                vt = v.Value.VariantType.value if v.Value is not None else 0
                if vt == 0:  # no value yet: the declared data type (built-in types share the ids)
                    dtype = (await client.read_attributes([nodes[len(kinds)]], ua.AttributeIds.DataType))[0]
                    ident = dtype.Value.Value.Identifier if dtype.Value and dtype.Value.Value else 0
                    vt = ident if isinstance(ident, int) else 0
                kinds.append(TDType(VARIANT_TYPES.get(vt, "VARCHAR")))
            return kinds
        finally:
            await _quietly(client.disconnect())

    def catalog(self) -> Catalog:
        if not self.types:
            self.types = asyncio.run(self._read_types())
            self.specs = [self._spec(p, t) for p, t in zip(self.points, self.types)]
        cat = Catalog()
        first: dict[str, tuple[TableSpec, str]] = {}  # per super table: the first point writing it
        for p, spec in zip(self.points, self.specs):
            assert spec.stable is not None
            had, where = first.setdefault(spec.stable, (spec, p.where))
            if [(c.name, c.type.name) for c in had.columns] != [(c.name, c.type.name) for c in spec.columns] \
                    or [c.name for c in had.tags] != [c.name for c in spec.tags]:
                raise SourceError(f"{self.where}: {p.where} and {where} both write super table {spec.stable!r}"
                                  f" but with different columns or tags")
            cat.add_table(spec)  # which also records (and widens) its super table
        return cat

    def _spec(self, p: Point, value_type: TDType) -> TableSpec:
        cols = []
        for c in p.columns:
            kind = c.type or value_type
            if kind.name in ("VARCHAR", "NCHAR", "VARBINARY") and kind.length is None:
                kind = kind.with_length(64)
            cols.append(Column(c.name, kind))
        tags = tuple(Column(n, t) for n, t, _ in p.tags)
        return TableSpec(p.code, tuple(cols), self.database, p.stable_name(value_type), tags,
                         tuple(v for _, _, v in p.tags), "us")

    # -- reading ----------------------------------------------------------------------------------

    def partitions(self) -> list[str]:
        return ["opcua"]

    def read(self, partition: str, start: Any = None) -> Iterator[TableBatch]:
        if not self.specs:
            self.catalog()
        inbox = Inbox(self.batch_size, self.batch_timeout, self.idle)
        collector = self._collector = Collector(self, inbox.items)
        collector.start()
        builder = Builder(self)

        def present() -> bool:  # idle time counts only while the server is there to send
            if collector.error is not None:
                raise collector.error
            return collector.connected()

        try:
            for got in inbox.batches(self._stop, present=present):
                yield from builder.batches(got)
        finally:
            collector.stop()

    def close(self) -> None:
        self._stop.set()
        if self._collector is not None:
            self._collector.stop()


class Collector(threading.Thread):
    """The asyncio side: sessions that subscribe (or poll) and append notifications to ``inbox`` as
    plain tuples ``(point index, value, status, source µs, server µs, received µs)``."""

    def __init__(self, source: OpcUaSource, inbox: collections.deque[tuple[Any, ...]]) -> None:
        super().__init__(name="tdetl-opcua", daemon=True)
        self.source = source
        self.inbox = inbox
        self.error: BaseException | None = None
        self._done = threading.Event()
        self.clients: list[Any] = []
        self._sessions = 0

    def connected(self) -> bool:
        """Every session is up (none still connecting or reconnecting after a loss)."""
        if len(self.clients) < self._sessions:
            return False
        return all(c.uaclient.state.value == "connected" for c in self.clients)

    def stop(self) -> None:
        self._done.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=10)

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # handed to the reading thread
            self.error = e

    async def _main(self) -> None:
        n = self._sessions = min(self.source.concurrent, len(self.source.points))
        shares = [list(range(i, len(self.source.points), n)) for i in range(n)]
        tasks = [asyncio.create_task(self._session(share)) for share in shares]
        try:
            while not self._done.is_set():
                for t in tasks:
                    if t.done() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
                await asyncio.sleep(0.05)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _session(self, share: list[int]) -> None:
        from asyncua import ua

        src = self.source
        client = await src.connect()
        self.clients.append(client)
        try:
            nodes = [client.get_node(src.points[i].node_id) for i in share]
            if src.mode == "subscribe":
                try:
                    await self._subscribe(client, nodes, share)
                except ua.UaStatusCodeError as e:
                    log.warning("%s: subscriptions refused (%s); polling every %ss", src.where, _why(e), src.interval)
                else:
                    await _forever()
            await self._poll(client, nodes, share)
        finally:
            await _quietly(client.disconnect())

    async def _subscribe(self, client: Any, nodes: list[Any], share: list[int]) -> None:
        from asyncua import ua

        by_node = {n.nodeid: i for n, i in zip(nodes, share)}
        inbox = self.inbox

        class Handler:
            def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
                dv = data.monitored_item.Value
                inbox.append((by_node[node.nodeid], val, dv.StatusCode.value if dv.StatusCode else 0,
                              _us(dv.SourceTimestamp), _us(dv.ServerTimestamp), time.time_ns() // 1000))

            def status_change_notification(self, status: Any) -> None:
                log.info("subscription status: %s", status)

        interval_ms = self.source.interval * 1000
        params = ua.CreateSubscriptionParameters(RequestedPublishingInterval=interval_ms,
                                                 RequestedLifetimeCount=10_000, RequestedMaxKeepAliveCount=10,
                                                 MaxNotificationsPerPublish=0, PublishingEnabled=True, Priority=0)
        sub = await client.create_subscription(params, Handler())
        # every change in a publishing interval is kept: the queue holds an interval of 10 ms samples
        await sub.subscribe_data_change(nodes, sampling_interval=0, queuesize=max(100, int(interval_ms // 10)))

    async def _poll(self, client: Any, nodes: list[Any], share: list[int]) -> None:
        from asyncua import ua

        last: dict[int, tuple[Any, ...]] = {}
        while True:
            started = time.monotonic()
            try:
                values = await client.read_attributes(nodes, ua.AttributeIds.Value)
            except (ConnectionError, asyncio.TimeoutError, ua.UaError) as e:
                log.info("poll failed (%s); the session reconnects", _why(e))
                await asyncio.sleep(self.source.interval)
                continue
            now = time.time_ns() // 1000
            for i, dv in zip(share, values):
                val = dv.Value.Value if dv.Value is not None else None
                seen = (val, dv.StatusCode.value, dv.SourceTimestamp)
                if last.get(i) == seen:
                    continue
                last[i] = seen
                self.inbox.append((i, val, dv.StatusCode.value, _us(dv.SourceTimestamp), _us(dv.ServerTimestamp), now))
            await asyncio.sleep(max(0.0, self.source.interval - (time.monotonic() - started)))


class Builder:
    """Notifications per point, turned column-wise into one batch per point and batch."""

    def __init__(self, source: OpcUaSource) -> None:
        self.source = source
        self.last_received: dict[int, int] = {}  # keeps received_time strictly increasing per point
        self.raw = RawKeeper(source.raw, source.keep_days) if source.raw is not None else None

    def batches(self, items: list[tuple[Any, ...]]) -> Iterator[TableBatch]:
        by_point: dict[int, list[tuple[Any, ...]]] = {}
        for item in items:
            by_point.setdefault(item[0], []).append(item)
        for i, point_items in by_point.items():
            yield self._batch(i, point_items)

    def _batch(self, i: int, items: list[tuple[Any, ...]]) -> TableBatch:
        src = self.source
        point, spec, value_type = src.points[i], src.specs[i], src.types[i]
        _, values, status, source_us, server_us, received_us = zip(*items)
        n = len(items)
        recv = pa.array(received_us, pa.int64())
        primary = point.columns[0].role
        if primary == "received_time":  # values delivered in one publish share a receive time
            base = pc.subtract(recv, pa.array(range(n), pa.int64()))
            floor = self.last_received.get(i, -(1 << 62)) + 1
            cm = pl.Series(pc.max_element_wise(base, pa.scalar(floor, pa.int64()))).cum_max()
            recv = pc.add(cm.to_arrow(), pa.array(range(n), pa.int64()))
            self.last_received[i] = recv[n - 1].as_py()
        orig = pa.array(source_us, pa.int64())
        if primary == "original_time":  # no source timestamp: the server's, then when it came
            orig = pc.coalesce(orig, pa.array(server_us, pa.int64()), recv)
        try:
            raw_values = pa.array(values, value_type.arrow("us"))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
            raise SourceError(f"{src.where}: {point.where}: node {point.node_id} sent a value that is not"
                              f" {value_type}: {e}") from None
        quality = pa.array(status, pa.uint32())
        arrays = []
        for c, col in zip(point.columns, spec.columns):
            if c.role == "received_time":
                arr = recv.cast(pa.timestamp("us"))
            elif c.role == "original_time":
                arr = orig.cast(pa.timestamp("us"))
            elif c.role == "value":
                arr = raw_values
            else:
                arr = quality
            target = col.type.arrow("us")
            if arr.type != target:
                arr = pc.cast(arr, target, safe=c.role != "quality")  # a status code keeps its bits
            arrays.append(arr)
        data = pa.RecordBatch.from_arrays(arrays, names=[c.name for c in spec.columns])
        spec = _sized(spec, data)
        if self.raw is not None:
            self.raw.keep(point.node_id, raw_values, quality, orig, pa.array(server_us, pa.int64()), recv)
        return TableBatch(spec, conform(data, spec), "opcua", None)


def _sized(spec: TableSpec, data: pa.RecordBatch) -> TableSpec:
    """Text columns wide enough for the longest value seen (the catalog guessed 64)."""
    cols, grown = [], False
    for c in spec.columns:
        if c.type.name in ("VARCHAR", "NCHAR", "VARBINARY"):
            need = sized(c.type.with_length(None), pl.Series(data.column(c.name)))
            if (need.length or 0) > (c.type.length or 0):
                c, grown = Column(c.name, need), True
        cols.append(c)
    return spec.replace(columns=tuple(cols)) if grown else spec


class RawKeeper:
    """``enable``/``path``/``keep``: every notification also goes, as it came, to
    ``<path>/opcua-<UTC day>.jsonl``; files older than ``keep`` days are removed."""

    def __init__(self, path: Path, keep_days: int) -> None:
        self.path, self.keep_days = path, keep_days
        path.mkdir(parents=True, exist_ok=True)
        self.day = ""

    def keep(self, node: str, values: pa.Array, status: pa.Array, source: pa.Array, server: pa.Array,
             received: pa.Array) -> None:
        day = time.strftime("%Y-%m-%d", time.gmtime())
        if day != self.day:
            self.day = day
            cutoff = time.strftime("%Y-%m-%d", time.gmtime(time.time() - self.keep_days * 86_400))
            for f in self.path.glob("opcua-*.jsonl"):
                if f.stem[len("opcua-"):] < cutoff:
                    f.unlink(missing_ok=True)
        n = len(values)
        frame = pl.DataFrame({"point_id": pl.repeat(node, n, eager=True), "value": pl.Series(values),
                              "status": pl.Series(status), "source_us": pl.Series(source),
                              "server_us": pl.Series(server), "received_us": pl.Series(received)})
        with open(self.path / f"opcua-{day}.jsonl", "ab") as fh:
            frame.write_ndjson(fh)


def _cert_uris(cert: Any) -> list[str]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def _why(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


async def _forever() -> None:
    while True:
        await asyncio.sleep(3600)


async def _quietly(aw: Any) -> None:
    try:
        await asyncio.wait_for(aw, 5)
    except Exception:
        log.debug("disconnect failed", exc_info=True)
