"""``mqtt://host:1883?topic=plant/{stable}/{tbname}&qos=1`` as a target: publish what the source
reads (a ``tmq://`` subscription, a sync, a file) onward, as taosX's data publisher does.

Messages are rendered by :mod:`tdetl.drivers.common.publish`. A flush returns only when the broker
has acknowledged every message of it (QoS 1 PUBACK, QoS 2 PUBCOMP), so a source's offsets are
committed after that and never before. paho keeps unacknowledged messages and sends them again
after it reconnects (with back-off), so a broker restart loses nothing (QoS 1/2: at least once).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, ClassVar

from ...capabilities import SinkCapabilities
from ...dsn import Dsn
from ...errors import SinkError
from ...model import Catalog, TableBatch
from ...options import Options
from ...params import Param, Spec
from ...quality import Rejects
from ..common.publish import PUBLISH, Publisher

log = logging.getLogger("tdetl.mqtt")
_VERSIONS = {"3.1": 3, "3.1.1": 4, "5.0": 5, "5": 5}
_OWED_MAX = 30_000  # unacknowledged messages at most: MQTT message ids are 16 bits, paho refuses one in use
MQTT_ERR_QUEUE_SIZE = 15  # paho.mqtt.client.MQTT_ERR_QUEUE_SIZE (paho is imported only when a run starts)


class MqttSink(Publisher):
    capabilities = SinkCapabilities()  # each message once more after a crash: at-least-once
    requires: ClassVar[dict[str, str]] = {"paho": "mqtt"}  # module -> the extra that installs it
    spec = Spec(
        *PUBLISH,
        Param("qos", "choice", "1", "QoS of published messages", choices=("0", "1", "2")),
        Param("retain", "flag", False, "publish with the retain flag"),
        Param("client_id", "text", None, "client id (default tdetl-pub-<pid>)"),
        Param("version", "choice", "3.1.1", "MQTT protocol version", choices=tuple(_VERSIONS)),
        Param("keep_alive", "int", 60, "keep-alive seconds", minimum=1),
        Param("ack_timeout", "duration", 300.0, "how long a flush waits for the broker's acknowledgements"),
        Param("max_inflight", "int", 1000, "messages sent and not yet acknowledged", minimum=1),
    )

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        self.qos = int(self.config["qos"])
        self._client: Any = None
        self._sent: set[int] = set()  # message ids of this flush
        self._acked: set[int] = set()  # of those, the ones the broker acknowledged (paho's thread adds)
        self._lock = threading.Lock()
        self._connected = threading.Event()

    def prepare(self, catalog: Catalog) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        cfg = self.config
        proto = _VERSIONS[cfg["version"]]
        kwargs: dict[str, Any] = {"client_id": cfg["client_id"] or f"tdetl-pub-{id(self):x}", "protocol": proto}
        if proto != 5:
            kwargs["clean_session"] = True
        client = mqtt.Client(CallbackAPIVersion.VERSION2, **kwargs)
        client.enable_logger(logging.getLogger("tdetl.mqtt.paho"))
        client.max_inflight_messages_set(cfg["max_inflight"])
        client.max_queued_messages_set(0)
        if self.dsn.user:
            client.username_pw_set(self.dsn.user, self.dsn.password)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = lambda c, u, f, rc, p=None: self._connected.set() if not rc.is_failure else None
        client.on_disconnect = lambda *a: self._connected.clear()
        client.on_publish = self._on_publish
        try:
            client.connect(self.dsn.host or "localhost", self.dsn.port or 1883, cfg["keep_alive"])
        except OSError as e:
            raise SinkError(f"{self.where}: cannot connect to the broker: {e}") from None
        client.loop_start()
        if not self._connected.wait(15):
            client.loop_stop()
            raise SinkError(f"{self.where}: the broker did not accept the connection within 15 s")
        self._client = client

    def _on_publish(self, client: Any, userdata: Any, mid: int, *rest: Any) -> None:
        with self._lock:
            self._acked.add(mid)

    def write(self, batch: TableBatch) -> None:
        """Queued with paho even while disconnected (QoS 1/2 are sent once it reconnects)."""
        retain = self.config["retain"]
        for m in self.render.messages(batch):
            if len(self._sent) >= _OWED_MAX:
                self._wait_acks()
            info = self._client.publish(m.topic, m.payload, qos=self.qos, retain=retain)
            if info.rc == MQTT_ERR_QUEUE_SIZE:
                raise SinkError(f"{self.where}: paho refused to queue a message (message id {info.mid} in use)")
            with self._lock:
                self._sent.add(info.mid)
            self.published += 1

    def wants_flush(self) -> bool:
        return len(self._sent) >= _OWED_MAX

    def flush(self, checkpoint: dict[str, Any] | None = None) -> None:
        """Back only when every message of the flush is acknowledged (QoS 0: handed to the socket)."""
        self._wait_acks()

    def _wait_acks(self) -> None:
        deadline = time.monotonic() + self.config["ack_timeout"]
        while True:
            with self._lock:
                owed = len(self._sent - self._acked)
                if not owed:
                    self._sent.clear()
                    self._acked.clear()
                    return
            if time.monotonic() > deadline:
                raise SinkError(f"{self.where}: the broker did not acknowledge {owed} messages within"
                                f" ack_timeout={self.config['ack_timeout']:g}s; what came after the last"
                                " acknowledged flush is not committed at the source")
            time.sleep(0.01)

    def _forget(self) -> None:
        self._sent.clear()
        self._acked.clear()

    def _disconnect(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
