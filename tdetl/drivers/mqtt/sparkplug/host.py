"""What a Sparkplug B host application keeps and decides, apart from MQTT: the birth certificates
(metric names, aliases and types per edge node and device), online state, and each message's metric
values as rows. Topics: ``spBv1.0/<group>/<NBIRTH|NDATA|NDEATH|DBIRTH|DDATA|DDEATH|...>/<node>[/<device>]``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import payload as pb

NAMESPACE = "spBv1.0"
DATA_TYPES = ("NBIRTH", "NDATA", "NDEATH", "DBIRTH", "DDATA", "DDEATH")
REBIRTH = "Node Control/Rebirth"
BDSEQ = "bdSeq"
_BITS = {pb.INT8: 8, pb.INT16: 16, pb.INT32: 32, pb.INT64: 64}
_UBITS = {pb.UINT8: 8, pb.UINT16: 16, pb.UINT32: 32, pb.UINT64: 64}


class BadMessage(ValueError):
    """A message that is not Sparkplug B (topic or payload); the text names what is wrong."""


@dataclass(frozen=True)
class Topic:
    group: str
    kind: str
    node: str
    device: str  # "" for the edge node itself


def parse_topic(topic: str) -> Topic | None:
    """The topic's parts, or None for what a host does not ingest (STATE, commands)."""
    parts = topic.split("/")
    if len(parts) < 2 or parts[0] != NAMESPACE or parts[1] == "STATE":
        return None
    if len(parts) not in (4, 5):
        raise BadMessage(f"topic {topic!r} is not {NAMESPACE}/<group>/<type>/<node>[/<device>]")
    if parts[2] not in DATA_TYPES:
        return None  # NCMD, DCMD: commands to the edge, not its data
    if (len(parts) == 5) != parts[2].startswith("D"):
        raise BadMessage(f"topic {topic!r}: {parts[2]} {'needs' if parts[2].startswith('D') else 'takes no'}"
                         " device level")
    return Topic(parts[1], parts[2], parts[3], parts[4] if len(parts) == 5 else "")


@dataclass
class Birth:
    """One edge node's or device's birth certificate: alias and name -> (name, datatype)."""

    by_alias: dict[int, tuple[str, int]] = field(default_factory=dict)
    by_name: dict[str, int] = field(default_factory=dict)
    bdseq: int | None = None


@dataclass
class Row:
    metric: str
    datatype: int
    ts: int  # ms
    value: Any  # None: null


@dataclass
class Decoded:
    rows: list[Row]
    at: int = 0  # the payload's timestamp (ms), or when it was received
    online: bool | None = None  # a birth (True) or death (False): the state table's row
    unknown: list[str] = field(default_factory=list)  # metrics no birth named (by alias or name)
    devices: list[str] = field(default_factory=list)  # a node's death: its devices, offline with it


def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def value_of(m: Any, datatype: int) -> Any:
    """A metric's value as the type its birth declared (None: null or no value)."""
    kind = m.WhichOneof("value")
    if m.is_null or kind is None:
        return None
    raw = getattr(m, kind)
    if datatype in _BITS:  # two's complement in an unsigned field (Tahu sign-extends into 32/64 bits)
        return _signed(int(raw), _BITS[datatype])
    if datatype in _UBITS:
        return int(raw) & ((1 << _UBITS[datatype]) - 1)
    if datatype == pb.BOOLEAN:
        return bool(raw)
    if datatype in (pb.FLOAT, pb.DOUBLE):
        return float(raw)
    if datatype == pb.DATETIME:
        return int(raw)
    return raw  # text (String, Text, UUID) or bytes (Bytes, File, and DataSet/Template as encoded)


class Host:
    """Births and deaths across the edge nodes a source sees (one per source: its readers share it)."""

    def __init__(self) -> None:
        self.births: dict[tuple[str, str, str], Birth] = {}

    def decode(self, t: Topic, data: bytes, received_ms: int) -> Decoded:
        try:
            p = pb.Payload.FromString(data)
        except Exception as e:  # protobuf's DecodeError, or worse on hostile bytes
            raise BadMessage(f"payload is not a Sparkplug B protobuf ({type(e).__name__}: {e})") from None
        ts = p.timestamp if p.HasField("timestamp") else received_ms
        key = (t.group, t.node, t.device)
        if t.kind in ("NBIRTH", "DBIRTH"):
            return self._birth(key, p, ts)
        if t.kind in ("NDEATH", "DDEATH"):
            return self._death(key, p, ts)
        birth = self.births.get(key)
        rows: list[Row] = []
        unknown: list[str] = []
        for m in p.metrics:
            found = None
            if birth is not None:
                if m.HasField("alias"):
                    found = birth.by_alias.get(m.alias)
                elif m.name in birth.by_name:
                    found = (m.name, birth.by_name[m.name])
            if found is None:
                unknown.append(m.name or f"alias {m.alias}")
                continue
            name, datatype = found
            if m.HasField("datatype") and m.datatype != datatype:
                raise BadMessage(f"metric {name!r} comes as {pb.TYPE_NAMES.get(m.datatype, m.datatype)} but its birth"
                                 f" declared {pb.TYPE_NAMES.get(datatype, datatype)}")
            rows.append(Row(name, datatype, m.timestamp if m.HasField("timestamp") else ts, value_of(m, datatype)))
        return Decoded(rows, ts, unknown=unknown)

    def _birth(self, key: tuple[str, str, str], p: Any, ts: int) -> Decoded:
        birth = Birth()
        rows = []
        for m in p.metrics:
            if not m.name or not m.HasField("datatype"):
                raise BadMessage("a birth metric without a name or datatype")
            birth.by_name[m.name] = m.datatype
            if m.HasField("alias"):
                birth.by_alias[m.alias] = (m.name, m.datatype)
            if m.name == BDSEQ:
                birth.bdseq = int(value_of(m, pb.INT64) or 0)
            if m.WhichOneof("value") is not None or m.is_null:
                rows.append(Row(m.name, m.datatype, m.timestamp if m.HasField("timestamp") else ts,
                                value_of(m, m.datatype)))
        if not key[2]:  # a node's birth starts a new session: its devices must be born again
            for k in [k for k in self.births if k[:2] == key[:2] and k[2]]:
                del self.births[k]
        self.births[key] = birth
        return Decoded(rows, ts, online=True)

    def _death(self, key: tuple[str, str, str], p: Any, ts: int) -> Decoded:
        birth = self.births.get(key)
        if not key[2] and birth is not None and birth.bdseq is not None:
            seq = next((value_of(m, pb.INT64) for m in p.metrics if m.name == BDSEQ), None)
            if seq is not None and seq != birth.bdseq:
                return Decoded([], ts)  # the will of an older session: this one lives on
        self.births.pop(key, None)
        devices = []
        if not key[2]:
            devices = self.devices_of(key[0], key[1])
            for d in devices:
                del self.births[(key[0], key[1], d)]
        return Decoded([], ts, online=False, devices=devices)

    def devices_of(self, group: str, node: str) -> list[str]:
        return [k[2] for k in self.births if k[:2] == (group, node) and k[2]]
