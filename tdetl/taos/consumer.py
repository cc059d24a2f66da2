"""TMQ consumers behind one small interface: the native one (``native_consumer.py``, libtaos's
``tmq_*`` API) and the WebSocket one (``ws_consumer.py``, taosAdapter's ``/rest/tmq``), opened by
:func:`tdetl.taos.connect.open_consumer`. A polled message is read as TMQ raw (``tmq_get_raw`` /
``fetch_raw``: shared/spec/rawblock.md §5), the one form that both transports give, that can be
decoded (``tmq_raw.py``) and written back unchanged (``tmq_write_raw``).

Offsets are committed per message (``tmq_commit_sync(msg)`` commits where that message ends, also
for snapshot offsets, which are no plain numbers), so a message is kept until it is committed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

DATA, META, METADATA = 1, 2, 3  # tmq_res_t
KINDS = {DATA: "data", META: "meta", METADATA: "metadata", 4: "rawdata"}


@dataclass
class Message:
    """One polled message: where it came from and its TMQ raw form (``raw`` is only valid until
    the message is released)."""

    kind: str
    topic: str
    db: str
    vgroup: int
    offset: int  # the server's offset (a WAL version; -1 for snapshot data)
    raw_type: int = 0
    raw: memoryview = field(default_factory=lambda: memoryview(b""))
    handle: Any = None  # what committing and releasing it take
    owner: str = ""  # the consumer (pipeline partition) that polled it


@dataclass(frozen=True)
class Assignment:
    vgroup: int
    current: int
    begin: int
    end: int


class Consumer(ABC):
    """One member of a consumer group, used by one thread."""

    @abstractmethod
    def poll(self, timeout: float) -> Message | None:
        """The next message (its raw form filled in), or None after ``timeout`` seconds."""

    @abstractmethod
    def commit(self, message: Message) -> None:
        """Commit the offset after ``message`` for its vgroup."""

    @abstractmethod
    def release(self, message: Message) -> None:
        """Free what ``message`` holds (its raw bytes become invalid)."""

    def drop_raw(self, message: Message) -> None:
        """Free the raw bytes once read; what committing needs stays until :meth:`release`."""
        message.raw = memoryview(b"")

    def commit_all(self, messages: list[Message]) -> None:
        """Commit after the last of ``messages`` of each topic and vgroup, then free them all."""
        last: dict[tuple[str, int], Message] = {}
        for m in messages:
            last[(m.topic, m.vgroup)] = m
        try:
            for m in last.values():
                self.commit(m)
        finally:
            for m in messages:
                self.release(m)

    @abstractmethod
    def json_meta(self, message: Message) -> dict[str, Any] | None:
        """A meta message as TDengine's JSON (create/alter/drop), for logs and decoded sinks."""

    @abstractmethod
    def assignment(self, topic: str) -> list[Assignment]: ...

    @abstractmethod
    def seek(self, topic: str, vgroup: int, offset: int) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


def consumer_config(user: str, password: str, host: str | None, port: int | None, group: str, client: str,
                    offset_reset: str, snapshot: bool, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The ``tmq_conf_set`` keys tdetl sets: auto-commit off (offsets follow the sink)."""
    conf = {"td.connect.user": user, "td.connect.pass": password, "group.id": group, "client.id": client,
            "auto.offset.reset": offset_reset, "enable.auto.commit": "false",
            "experimental.snapshot.enable": "true" if snapshot else "false", "msg.with.table.name": "true"}
    if host:
        conf["td.connect.ip"] = host
    if port:
        conf["td.connect.port"] = str(port)
    conf.update(extra or {})
    return conf
