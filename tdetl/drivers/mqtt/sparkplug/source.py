"""``sparkplugb+mqtt://[user:pass@]host:1883?client_id=…&groups=…`` as a source: a Sparkplug B host
application. Birth certificates (NBIRTH/DBIRTH) name each metric, its alias and its type; DATA
messages carry values by alias; deaths (NDEATH/DDEATH) mark an edge node or device offline. Every
metric value becomes a row ``(ts, val)`` of a child table per group/node/device/metric in a super
table per value type (``stable=spb_{type}``, tags ``group_id, node_id, device_id, metric``), so a metric whose
type changes at a rebirth goes on in the other type's table. Births and deaths are rows of
``spb_state`` (``online``). A DATA metric no birth has named is the ``metric-unknown`` situation: by
default the message is dropped and the edge node asked to be born again (``Node Control/Rebirth``).
MQTT itself (sessions, acknowledgement after the target has the rows) is the ``mqtt://`` source's.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterable
from typing import Any, ClassVar

import pyarrow as pa

from ....capabilities import SourceCapabilities
from ....dsn import Dsn
from ....errors import DsnError, shown
from ....model import Column, TableBatch, TableSpec, conform
from ....options import Options
from ....params import Param, Spec
from ....quality import Rejects
from ....transform.messages import Messages
from ....types import TDType, parse_type
from ..source import CLIENT, MqttSource
from . import payload as pb
from .host import DATA_TYPES, NAMESPACE, REBIRTH, BadMessage, Host, Row, Topic, parse_topic

TYPES = {pb.INT8: "TINYINT", pb.INT16: "SMALLINT", pb.INT32: "INT", pb.INT64: "BIGINT",
         pb.UINT8: "TINYINT UNSIGNED", pb.UINT16: "SMALLINT UNSIGNED", pb.UINT32: "INT UNSIGNED",
         pb.UINT64: "BIGINT UNSIGNED", pb.FLOAT: "FLOAT", pb.DOUBLE: "DOUBLE", pb.BOOLEAN: "BOOL",
         pb.STRING: "VARCHAR", pb.TEXT: "VARCHAR", pb.UUID: "VARCHAR", pb.DATETIME: "TIMESTAMP",
         pb.BYTES: "VARBINARY", pb.FILE: "VARBINARY", pb.DATASET: "VARBINARY", pb.TEMPLATE: "VARBINARY"}
TAGS = ("group_id", "node_id", "device_id", "metric")  # not group: a keyword
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def _tag(name: str, values: Iterable[str]) -> Column:
    return Column(name, TDType("VARCHAR", length=max([1, *(len(v.encode()) for v in values)])))


class SparkplugSource(MqttSource):
    capabilities = SourceCapabilities(partitions="consumers", consumer=True)
    requires: ClassVar[dict[str, str]] = {"paho": "sparkplug", "google.protobuf": "sparkplug"}
    protocols = ("mqtt",)
    spec = Spec(
        Param("groups", "list", help="Sparkplug group ids to read (default all: spBv1.0/#)"),
        Param("nodes", "list", help="edge node ids to keep (default all)"),
        Param("devices", "list", help="device ids whose D* messages to keep (default all)"),
        Param("messages", "list", help=f"message types to ingest (default all: {','.join(DATA_TYPES)})"),
        Param("topics", "list", help="subscribe to these instead of spBv1.0/<group>/# (<topic>[::<qos>])"),
        Param("stable", "text", "spb_{type}", "super table name template: {type} (int32, double, string…), {metric},"
                                              " {group}, {node}, {device}"),
        Param("tbname", "text", None, "child table name template (same fields; default t_<md5 of"
                                      " group/node/device/metric/type>)"),
        Param("state_stable", "text", "spb_state", "super table of births and deaths (online true/false);"
                                                   " empty: not kept"),
        Param("rebirth_interval", "duration", 10.0, "at most one rebirth request per edge node this often"),
        *CLIENT)

    def __init__(self, dsn: Dsn, options: Options, rejects: Rejects | None = None) -> None:
        super().__init__(dsn, options, rejects)
        cfg = self.config
        self.nodes = set(cfg["nodes"])
        self.devices = set(cfg["devices"])
        self.kinds = set(cfg["messages"]) or set(DATA_TYPES)
        bad = self.kinds - set(DATA_TYPES)
        if bad:
            raise DsnError(f"{self.where}: messages={sorted(bad)[0]!r} is not one of {', '.join(DATA_TYPES)}")
        for key in ("stable", "tbname"):
            if cfg[key]:
                try:
                    cfg[key].format(type="t", metric="m", group="g", node="n", device="d")
                except (KeyError, IndexError, ValueError, AttributeError):
                    raise DsnError(f"{self.where}: {key}={shown(cfg[key], 100)} may use only {{type}}, {{metric}},"
                                   " {group}, {node} and {device}") from None
        self.host = Host()
        self._host_lock = threading.Lock()
        self._asked: dict[tuple[str, str], float] = {}

    def topic_list(self) -> list[str]:
        cfg = self.config
        return list(cfg["topics"]) or [f"{NAMESPACE}/{g}/#" for g in cfg["groups"]] or [f"{NAMESPACE}/#"]

    def _kept(self, t: Topic) -> bool:
        return (t.kind in self.kinds and (not self.nodes or t.node in self.nodes)
                and (not t.device or not self.devices or t.device in self.devices))

    # -- messages to tables -------------------------------------------------------------------------

    def emit(self, partition: str, msgs: Messages, token: Any) -> list[TableBatch]:
        seq = self._pending.add(partition, token)
        tables: dict[tuple[str, str], tuple[tuple[str, ...], int, list[int], list[Any]]] = {}
        states: dict[tuple[str, str, str], tuple[list[int], list[bool]]] = {}
        bad: list[tuple[str, dict[str, Any]]] = []
        for data, topic, received in zip(msgs.payloads, msgs.topics, msgs.ts_ms):
            try:
                t = parse_topic(topic)
                if t is None or not self._kept(t):
                    continue
                with self._host_lock:
                    d = self.host.decode(t, data, received)
            except BadMessage as e:
                bad.append((f"{self.where}: {topic}: {e}", {"topic": topic, "message": data.hex()[:20_000]}))
                continue
            if d.unknown:
                self._unknown(partition, t, d.unknown, data)
            if d.online is not None:  # a node's death takes its devices offline with it
                for device in (t.device, *d.devices):
                    ts_list, flags = states.setdefault((t.group, t.node, device), ([], []))
                    ts_list.append(d.at)
                    flags.append(d.online)
            for r in d.rows:
                self._add(tables, t, r)
        if bad:
            self.rejects.reject([r for r, _ in bad], [rec for _, rec in bad])
        out = [self._batch(key, *v, partition) for key, v in tables.items()]
        out += self._states(states, partition)
        if out:
            last = out[-1]
            out[-1] = TableBatch(last.spec, last.data, partition, seq)
        return out

    def _names(self, t: Topic, metric: str, datatype: int) -> tuple[str, str]:
        kind = pb.TYPE_NAMES[datatype].lower()
        fields = {"type": kind, "metric": metric, "group": t.group, "node": t.node, "device": t.device}
        stable = _UNSAFE.sub("_", self.config["stable"].format(**fields))
        template = self.config["tbname"]
        if template:
            child = _UNSAFE.sub("_", template.format(**fields))
        else:
            child = "t_" + hashlib.md5(f"{t.group}/{t.node}/{t.device}/{metric}/{kind}".encode()).hexdigest()[:16]
        return stable, child

    def _add(self, tables: dict[tuple[str, str], tuple[tuple[str, ...], int, list[int], list[Any]]], t: Topic,
             r: Row) -> None:
        if r.datatype not in TYPES:
            raise_type = pb.TYPE_NAMES.get(r.datatype, str(r.datatype))
            self.rejects.reject([f"{self.where}: {t.group}/{t.node}/{t.device}: metric {r.metric!r} has type"
                                 f" {raise_type}, which has no TDengine column type"], [{"metric": r.metric}])
            return
        key = self._names(t, r.metric, r.datatype)
        entry = tables.get(key)
        if entry is None:
            entry = tables[key] = ((t.group, t.node, t.device, r.metric), r.datatype, [], [])
        entry[2].append(r.ts)
        entry[3].append(r.value)

    def _batch(self, key: tuple[str, str], tags: tuple[str, ...], datatype: int, ts: list[int], values: list[Any],
               partition: str) -> TableBatch:
        stable, child = key
        t = parse_type(TYPES[datatype])
        if t.name in ("VARCHAR", "VARBINARY"):
            longest = max([1, *(len(v.encode()) if isinstance(v, str) else len(v) for v in values if v is not None)])
            t = t.with_length(longest)
        cols = (Column("ts", TDType("TIMESTAMP")), Column("val", t))  # not value: a keyword
        spec = TableSpec(child, cols, self.config["database"], stable,
                         tuple(_tag(n, [v]) for n, v in zip(TAGS, tags)), tags, "ms")
        arrow = t.arrow("ms")
        data = pa.record_batch([pa.array(ts, pa.timestamp("ms")),
                                pa.array(values, pa.timestamp("ms") if t.name == "TIMESTAMP" else arrow)],
                               names=["ts", "val"])
        return TableBatch(spec, conform(data, spec), partition, None)

    def _states(self, states: dict[tuple[str, str, str], tuple[list[int], list[bool]]],
                partition: str) -> list[TableBatch]:
        stable = self.config["state_stable"]
        if not stable:
            return []
        out = []
        for (group, node, device), (ts, flags) in states.items():
            child = "s_" + hashlib.md5(f"{group}/{node}/{device}".encode()).hexdigest()[:16]
            cols = (Column("ts", TDType("TIMESTAMP")), Column("online", TDType("BOOL")))
            tags = (group, node, device)
            spec = TableSpec(child, cols, self.config["database"], stable,
                             tuple(_tag(n, [v]) for n, v in zip(TAGS[:3], tags)), tags, "ms")
            data = pa.record_batch([pa.array(ts, pa.timestamp("ms")), pa.array(flags, pa.bool_())],
                                   names=["ts", "online"])
            out.append(TableBatch(spec, data, partition, None))
        return out

    # -- what no birth named ------------------------------------------------------------------------

    def _unknown(self, partition: str, t: Topic, names: list[str], data: bytes) -> None:
        choice = self.rejects.choice("metric-unknown")
        where = f"{self.where}: {NAMESPACE}/{t.group}/{t.kind}/{t.node}{'/' + t.device if t.device else ''}"
        reason = (f"{where}: {len(names)} metric(s) no birth certificate named ({', '.join(names[:3])}"
                  f"{'…' if len(names) > 3 else ''})")
        if choice == "rebirth":
            self._ask_rebirth(partition, t)
        self.rejects.handle("metric-unknown", choice, [reason], [{"topic": where, "message": data.hex()[:20_000]}])

    def _ask_rebirth(self, partition: str, t: Topic) -> None:
        now = time.monotonic()
        key = (t.group, t.node)
        if now - self._asked.get(key, -1e9) < self.config["rebirth_interval"]:
            return
        client = self._clients.get(partition)
        if client is None:
            return
        self._asked[key] = now
        p = pb.Payload(timestamp=int(time.time() * 1000))
        p.metrics.add(name=REBIRTH, datatype=pb.BOOLEAN, boolean_value=True)
        client.publish(f"{NAMESPACE}/{t.group}/NCMD/{t.node}", p.SerializeToString(), qos=0)
