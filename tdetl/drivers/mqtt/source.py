"""``mqtt://[user:pass@]host:1883?topics=a/#::1&client_id=...`` as a source (paho-mqtt 2).

Messages are gathered into micro-batches (``batch_size`` / ``batch_timeout``) and parsed as one.
QoS 1/2 messages are acknowledged manually, only once the sink holds their batch: with
``clean_session=false`` a message the broker sent before a crash is sent again, none is lost. paho
reconnects with back-off and we re-subscribe on every connect. ``timeout`` (idle time before the
run ends) defaults to ``never``. With shared subscriptions (``$share/<group>/<topic>``) ``--jobs n``
runs n clients (``<client_id>-<i>``) among which the broker divides the messages; on a cluster each
is a share of its own.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

from ...capabilities import SourceCapabilities
from ...dsn import Dsn
from ...errors import DsnError, SourceError
from ...model import TableBatch
from ...options import Options
from ...params import DATABASE, IDLE, TLS, Param, Spec, batching
from ...quality import Rejects
from ...transform.messages import Messages
from ..common.batching import Inbox
from ..common.messages import MessageSource

log = logging.getLogger("tdetl.mqtt")
_LULL = 0.05  # seconds without a message that cut a batch while acknowledgements are owed
_VERSIONS = {"3.1": 3, "3.1.1": 4, "5.0": 5, "5": 5}
_LOG_LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
               "error": logging.ERROR}


def parse_topics(text: str, where: str) -> list[tuple[str, int]]:
    """``a/+/c::1,d/#`` -> [(a/+/c, 1), (d/#, 0)]."""
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        topic, _, qos = item.rpartition("::") if "::" in item else (item, "", "0")
        if not topic or qos not in ("0", "1", "2"):
            raise DsnError(f"{where}: topics item {item!r} must be <topic>[::<qos 0|1|2>]")
        if "#" in topic and not (topic == "#" or topic.endswith("/#")):
            raise DsnError(f"{where}: topics item {item!r}: '#' must be the last level")
        out.append((topic, int(qos)))
    return out


CLIENT = (  # the connection's parameters, shared with the MQTT-borne protocols (Sparkplug B)
    Param("client_id", "text", None, "client id (required)"),
    Param("version", "choice", "3.1", "MQTT protocol version", choices=tuple(_VERSIONS)),
    Param("clean_session", "flag", True, "start without the broker's stored session"),
    Param("keep_alive", "int", 60, "keep-alive seconds", minimum=1),
    *TLS,
    Param("log_level", "choice", "warn", "paho's log level", choices=tuple(_LOG_LEVELS)),
    *batching(10_000, 1.0, "messages"), IDLE, DATABASE)


class MqttSource(MessageSource):
    capabilities = SourceCapabilities(parser=True, partitions="consumers", consumer=True)
    requires: ClassVar[dict[str, str]] = {"paho": "mqtt"}  # module -> the extra that installs it
    spec = Spec(Param("topics", "list", help="<topic>[::<qos 0|1|2>] (+/# wildcards)"), *CLIENT)
    default_table = "mqtt_data"

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        where = dsn.masked()
        self.where = where
        cfg = self.config
        self.topics = parse_topics(",".join(self.topic_list()), where)
        if not self.topics:
            raise DsnError(f"{where}: name what to read: topics=<topic>[::<qos>][,...]")
        self.client_id = cfg["client_id"] or ""
        if not self.client_id:
            raise DsnError(f"{where}: client_id is required")
        self.protocol = _VERSIONS[cfg["version"]]
        self.clean = cfg["clean_session"]
        self.keep_alive = cfg["keep_alive"]
        self.log_level = _LOG_LEVELS[cfg["log_level"]]
        self._clients: dict[str, Any] = {}  # partition -> its paho client
        self._acks = threading.Lock()

    def topic_list(self) -> list[str]:
        """What to subscribe to, as ``topics`` items."""
        return list(self.config["topics"])

    def partitions(self) -> list[str]:
        n = self.options.jobs or 1
        if n > 1 and all(topic.startswith("$share/") for topic, _ in self.topics):
            return [f"mqtt-{i}" for i in range(n)]
        return ["mqtt"]  # without shared subscriptions a second client would get every message again

    def _tls(self, client: Any) -> None:
        if not (self.config["ca"] or self.config["cert"]):
            return
        ctx = ssl.create_default_context(cafile=self.pem_path("ca"))
        cert = self.pem_path("cert")
        if cert:
            ctx.load_cert_chain(cert, self.pem_path("cert_key"))
        client.tls_set_context(ctx)

    def _connect(self, partition: str, inbox: Inbox) -> Any:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client_id = self.client_id if partition == "mqtt" else f"{self.client_id}-{partition.removeprefix('mqtt-')}"
        kwargs: dict[str, Any] = {"client_id": client_id, "protocol": self.protocol, "manual_ack": True}
        if self.protocol != 5:
            kwargs["clean_session"] = self.clean
        client = mqtt.Client(CallbackAPIVersion.VERSION2, **kwargs)
        paho_log = logging.getLogger("tdetl.mqtt.paho")  # log_level: what of paho's own log is shown
        paho_log.setLevel(self.log_level)
        client.enable_logger(paho_log)
        if self.dsn.user:
            client.username_pw_set(self.dsn.user, self.dsn.password)
        try:
            self._tls(client)
        except (ssl.SSLError, OSError) as e:
            raise SourceError(f"{self.where}: TLS setup failed: {e}") from None
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        ready = threading.Event()
        failure: list[str] = []

        def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            if reason.is_failure:
                failure.append(str(reason))
            else:
                c.subscribe(self.topics)  # again after every reconnect
            ready.set()

        def on_message(c: Any, userdata: Any, msg: Any) -> None:
            # keep plain values, not paho's message: it holds cyclic Properties objects, and tens of
            # thousands of those waiting in the inbox made the cyclic GC rescan them (3.6x slower)
            inbox.items.append((msg.payload, msg.topic, msg.qos, msg.mid))

        def on_disconnect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            if reason.is_failure:
                log.warning("MQTT connection lost (%s); reconnecting", reason)

        client.on_connect, client.on_message, client.on_disconnect = on_connect, on_message, on_disconnect
        try:
            if self.protocol == 5:
                from paho.mqtt.packettypes import PacketTypes
                from paho.mqtt.properties import Properties

                props = Properties(PacketTypes.CONNECT)
                # QoS 1/2 messages are acknowledged only once the sink has them: let the broker
                # send a whole batch unacknowledged (its default window would be ~20 messages)
                props.ReceiveMaximum = 65535
                if not self.clean:  # MQTT 5 keeps a session only for its expiry interval: keep it
                    props.SessionExpiryInterval = 0xFFFFFFFF
                client.connect(self.dsn.host or "localhost", self.dsn.port or 1883, self.keep_alive,
                               clean_start=self.clean, properties=props)
            else:
                client.connect(self.dsn.host or "localhost", self.dsn.port or 1883, self.keep_alive)
        except (OSError, ssl.SSLError) as e:
            raise SourceError(f"{self.where}: cannot connect: {e}") from None
        client.loop_start()
        if not ready.wait(30) or failure:
            client.loop_stop()
            raise SourceError(f"{self.where}: broker refused the connection: {failure[0] if failure else 'timeout'}")
        return client

    def read(self, partition: str, start: Any = None) -> Iterator[TableBatch]:
        inbox = Inbox(self.batch_size, self.batch_timeout, self.config["timeout"])  # paho's thread fills it
        self._clients[partition] = self._connect(partition, inbox)
        yield from self.batches(partition, self._polls(inbox))

    def _polls(self, inbox: Inbox) -> Iterator[tuple[Messages, Any]]:
        for got in inbox.batches(self._stop, on_quiet=self._owed):
            now = int(time.time() * 1000)
            payloads, topics, qos, mids = (list(col) for col in zip(*got))
            msgs = Messages(payloads, topics, qos, mids, [None] * len(got), [now] * len(got))
            yield msgs, [(mid, q) for mid, q in zip(mids, qos) if q > 0]

    def _owed(self, got: list[Any], quiet: float) -> bool:
        """With QoS 1/2 messages unacknowledged the broker may be at its in-flight limit: a short
        lull means it waits for our acknowledgements, so hand the batch over and ask for a flush."""
        if quiet < _LULL or not (self.unacknowledged() or any(m[2] for m in got)):
            return False
        self._starved.set()
        return True

    def release(self, partition: str, tokens: list[Any]) -> None:
        client = self._clients.get(partition)
        if client is None:
            return
        with self._acks:
            for acks in tokens:
                for mid, qos in acks:
                    client.ack(mid, qos)

    def close(self) -> None:
        super().close()
        for client in self._clients.values():
            client.disconnect()
            client.loop_stop()
        self._clients.clear()
        self.remove_pem_files()
