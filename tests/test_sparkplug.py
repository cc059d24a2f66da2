"""``sparkplugb+mqtt://`` (tdetl/drivers/mqtt/sparkplug): an edge node simulated by the test on a real
mosquitto, its payloads encoded here by hand from the Sparkplug B field numbers (so the source's own
schema is checked, not trusted): births, data by alias, a DATA before any birth answered by a rebirth
request, a device death and rebirth with a metric whose type changed, the node's death; every value
exact in TDengine (taospy). Hostile payloads and topics are refused one message at a time."""

from __future__ import annotations

import struct
import threading
import time
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tdetl
from tdetl.drivers import open_source
from tdetl.drivers.mqtt.sparkplug.host import BadMessage, Host, parse_topic
from tdetl.errors import DataError, DsnError
from tdetl.options import Options
from tdetl.transform.messages import Messages

from .services import Mosquitto
from .taos_helpers import ANY, pytestmark, taospy_rows  # noqa: F401

# -- protobuf wire format, by hand (field numbers from Eclipse Tahu's sparkplug_b.proto) --------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _key(num: int, wire: int) -> bytes:
    return _varint(num << 3 | wire)


def _len(num: int, b: bytes) -> bytes:
    return _key(num, 2) + _varint(len(b)) + b


INT_VALUE = {1, 2, 3, 5, 6}  # Int8, Int16, Int32, UInt8, UInt16 -> int_value (10); the rest of the integers long_value


def metric(name: str | None = None, alias: int | None = None, datatype: int | None = None, value: Any = None,
           ts: int | None = None, null: bool = False) -> bytes:
    b = b""
    if name is not None:
        b += _len(1, name.encode())
    if alias is not None:
        b += _key(2, 0) + _varint(alias)
    if ts is not None:
        b += _key(3, 0) + _varint(ts)
    if datatype is not None:
        b += _key(4, 0) + _varint(datatype)
    if null:
        return b + _key(7, 0) + _varint(1)
    if value is None:
        return b
    if datatype in INT_VALUE:
        b += _key(10, 0) + _varint(value & 0xFFFFFFFF)
    elif datatype in (4, 7, 8, 13):
        b += _key(11, 0) + _varint(value & 0xFFFFFFFFFFFFFFFF)
    elif datatype == 9:
        b += _key(12, 5) + struct.pack("<f", value)
    elif datatype == 10:
        b += _key(13, 1) + struct.pack("<d", value)
    elif datatype == 11:
        b += _key(14, 0) + _varint(int(value))
    elif datatype in (12, 14, 15):
        b += _len(15, value.encode())
    elif datatype == 17:
        b += _len(16, value)
    return b


def payload(ts: int | None, *metrics: bytes, seq: int | None = None) -> bytes:
    b = (_key(1, 0) + _varint(ts)) if ts is not None else b""
    b += b"".join(_len(2, m) for m in metrics)
    return b + (_key(3, 0) + _varint(seq) if seq is not None else b"")


# -- against mosquitto and TDengine ----------------------------------------------------------------

def test_an_edge_node_on_mosquitto_lands_exact(mosquitto: Mosquitto, scratch: Any) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    db, g, n = scratch("tdetl_spb"), f"G{uuid.uuid4().hex[:6]}", "E1"
    src = (f"sparkplugb+mqtt://127.0.0.1:{mosquitto.port}?client_id=host{uuid.uuid4().hex[:8]}&groups={g}"
           "&timeout=3s&batch_timeout=100ms")
    result: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: result.update(s=tdetl.run(src, f"{ANY}/{db}?assert")))
    runner.start()
    rebirth = threading.Event()
    edge = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"edge{uuid.uuid4().hex[:8]}")
    edge.on_message = lambda c, u, m: rebirth.set() if b"Node Control/Rebirth" in m.payload else None
    edge.connect("127.0.0.1", mosquitto.port)
    edge.subscribe(f"spBv1.0/{g}/NCMD/{n}", qos=1)
    edge.loop_start()
    base = f"spBv1.0/{g}"

    def send(kind: str, body: bytes, device: str = "") -> None:
        edge.publish(f"{base}/{kind}/{n}{'/' + device if device else ''}", body, qos=1).wait_for_publish(10)

    sent = 0  # DATA before any birth: the host asks for a rebirth (and drops them, counted)
    end = time.monotonic() + 20
    while not rebirth.is_set() and time.monotonic() < end:
        send("DDATA", payload(int(time.time() * 1000), metric(alias=10, value=9.0, datatype=9)), "d1")
        sent += 1
        rebirth.wait(0.3)
    assert rebirth.is_set(), "no rebirth request"
    t0 = int(time.time() * 1000)
    send("NBIRTH", payload(t0, metric("bdSeq", 0, 4, 0), metric("Node Control/Rebirth", 1, 11, False),
                           metric("Temperature", 2, 10, 20.5), metric("Count", 3, 3, -5),
                           metric("Big", 4, 8, 2**64 - 1), metric("Name", 5, 12, "héllo ✓"),
                           metric("When", 6, 13, 1_700_000_000_123), seq=0))
    send("DBIRTH", payload(t0, metric("Pressure", 10, 9, 1.5), metric("Raw", 11, 17, b"\x00\xff"),
                           metric("Level", 12, 1, -1), metric("Small", 13, 6, 65535), seq=1), "d1")
    send("NDATA", payload(t0 + 1, metric(alias=2, value=-0.25, datatype=10),
                          metric(alias=3, value=2**31 - 1, datatype=3), seq=2))
    send("DDATA", payload(t0 + 1, metric(alias=10, value=2.5, datatype=9), metric(alias=12, null=True), seq=3),
         "d1")
    send("DDEATH", payload(t0 + 2, seq=4), "d1")
    send("DBIRTH", payload(t0 + 3, metric("Level", 12, 10, 3.25), seq=5), "d1")  # Level is a Double now
    send("DDATA", payload(t0 + 4, metric(alias=12, value=-7.5, datatype=10), seq=6), "d1")
    send("NDEATH", payload(t0 + 5, metric("bdSeq", None, 4, 0)))
    runner.join(60)
    edge.loop_stop()
    edge.disconnect()
    assert not runner.is_alive()
    s = result["s"]
    asked = s.outcomes.get("metric-unknown dropped, rebirth asked for", 0)
    assert 1 <= asked <= sent, (asked, sent, s.outcomes)

    def rows(stable: str, value: str = "val") -> list[tuple]:
        return taospy_rows(db, f"SELECT metric, device_id, CAST(ts AS BIGINT) - {t0}, {value} FROM {stable}"
                               " ORDER BY metric, ts")
    assert rows("spb_double") == [("Level", "d1", 3, 3.25), ("Level", "d1", 4, -7.5),
                                  ("Temperature", "", 0, 20.5), ("Temperature", "", 1, -0.25)]
    assert rows("spb_int32") == [("Count", "", 0, -5), ("Count", "", 1, 2**31 - 1)]
    assert rows("spb_int8") == [("Level", "d1", 0, -1), ("Level", "d1", 1, None)]
    assert rows("spb_float") == [("Pressure", "d1", 0, 1.5), ("Pressure", "d1", 1, 2.5)]
    assert rows("spb_uint64") == [("Big", "", 0, 2**64 - 1)]
    assert rows("spb_uint16") == [("Small", "d1", 0, 65535)]
    assert rows("spb_string") == [("Name", "", 0, "héllo ✓")]
    assert rows("spb_bytes") == [("Raw", "d1", 0, b"\x00\xff")]
    assert rows("spb_datetime", "CAST(val AS BIGINT)") == [("When", "", 0, 1_700_000_000_123)]
    assert rows("spb_boolean") == [("Node Control/Rebirth", "", 0, False)]
    assert rows("spb_int64") == [("bdSeq", "", 0, 0)]
    states = f"SELECT device_id, CAST(ts AS BIGINT) - {t0}, online FROM spb_state ORDER BY device_id, ts"
    assert taospy_rows(db, states) == [
        ("", 0, True), ("", 5, False), ("d1", 0, True), ("d1", 2, False), ("d1", 3, True), ("d1", 5, False)]
    assert taospy_rows(db, "SELECT DISTINCT group_id, node_id FROM spb_double") == [(g, n)]


# -- hostile input, without a broker ---------------------------------------------------------------

def _source(**params: str) -> Any:
    query = "&".join(f"{k}={v}" for k, v in {"client_id": "h", **params}.items())
    return open_source(f"sparkplugb+mqtt://127.0.0.1:1?{query}", Options())


def _emit(src: Any, *items: tuple[str, bytes]) -> list[Any]:
    msgs = Messages([p for _, p in items], [t for t, _ in items], [0] * len(items), list(range(len(items))),
                    [None] * len(items), [1_700_000_000_000] * len(items))
    return src.emit("mqtt", msgs, [])


CORPUS = [
    ("spBv1.0/G/NBIRTH/E", b"\xff\xff\xff", "not a Sparkplug B protobuf"),
    ("spBv1.0/G/NBIRTH/E", b"\x12\x05\x0a\x01", "not a Sparkplug B protobuf"),  # a metric cut short
    ("spBv1.0/G/NBIRTH/E", payload(1, metric(alias=1, datatype=9, value=1.0)), "without a name or datatype"),
    ("spBv1.0/G/DDATA/E", payload(1), "needs device level"),
    ("spBv1.0/G/NDATA/E/d", payload(1), "takes no device level"),
    ("spBv1.0/G/NDATA", payload(1), "is not spBv1.0/<group>/<type>/<node>"),
]


@pytest.mark.parametrize(("topic", "body", "match"), CORPUS)
def test_a_bad_message_is_refused_in_one_line_or_dropped(topic: str, body: bytes, match: str) -> None:
    src = _source()
    with pytest.raises(DataError, match=match) as e:
        _emit(src, (topic, body))
    assert "\n" not in str(e.value) and len(str(e.value)) < 1000
    src = open_source("sparkplugb+mqtt://127.0.0.1:1?client_id=h", Options(on_error=_drop()))
    good = ("spBv1.0/G/NBIRTH/E", payload(5, metric("x", 1, 3, 7)))
    batches = _emit(src, (topic, body), good)  # the bad one is counted, the good one kept
    assert [b.data.column("val").to_pylist() for b in batches if b.spec.stable == "spb_int32"] == [[7]]
    assert src.rejects.failed == 1


def _drop() -> Any:
    from tdetl.errors import ErrorPolicy

    return ErrorPolicy.parse("drop")


def test_a_type_that_contradicts_the_birth_is_refused() -> None:
    src = _source()
    _emit(src, ("spBv1.0/G/NBIRTH/E", payload(5, metric("x", 1, 3, 7))))
    with pytest.raises(DataError, match="'x' comes as Double but its birth declared Int32"):
        _emit(src, ("spBv1.0/G/NDATA/E", payload(6, metric(alias=1, datatype=10, value=1.0))))


def test_an_older_sessions_death_does_not_take_the_node_offline() -> None:
    src = _source()
    _emit(src, ("spBv1.0/G/NBIRTH/E", payload(5, metric("bdSeq", 1, 4, 2), metric("x", 2, 3, 7))))
    out = _emit(src, ("spBv1.0/G/NDEATH/E", payload(6, metric("bdSeq", None, 4, 1))))  # bdSeq 1: the old one
    assert out == []
    got = _emit(src, ("spBv1.0/G/NDATA/E", payload(7, metric(alias=2, value=8, datatype=3))))
    assert [b.data.column("val").to_pylist() for b in got] == [[8]]


@pytest.mark.parametrize(("params", "match"), [
    ({"messages": "NDATA,NOPE"}, "messages='NOPE' is not one of"),
    ({"stable": "spb_{kind}"}, r"stable='spb_\{kind\}' may use only"),
    ({"tbname": "{0}"}, r"tbname='\{0\}' may use only"),
    ({"tbname": "{metric.real}"}, "may use only"),
])
def test_bad_parameters_are_one_line(params: dict[str, str], match: str) -> None:
    with pytest.raises(DsnError, match=match):
        _source(**params)


@settings(max_examples=300, deadline=None)
@given(topic=st.text(max_size=60), body=st.binary(max_size=200))
def test_any_topic_and_payload_decodes_or_is_refused(topic: str, body: bytes) -> None:
    host = Host()
    try:
        t = parse_topic(topic)
        if t is not None:
            host.decode(t, body, 0)
    except BadMessage as e:
        assert "\n" not in str(e)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=120))
def test_any_payload_after_a_birth_decodes_or_is_refused(body: bytes) -> None:
    host = Host()
    birth = parse_topic("spBv1.0/G/NBIRTH/E")
    assert birth is not None
    host.decode(birth, payload(1, *(metric(f"m{k}", k, k, None) for k in range(1, 20))), 0)
    data = parse_topic("spBv1.0/G/NDATA/E")
    assert data is not None
    try:
        host.decode(data, body, 0)
    except BadMessage as e:
        assert "\n" not in str(e)


def test_filters_keep_only_the_named_nodes_devices_and_message_types() -> None:
    src = _source(nodes="E1", devices="d1", messages="NBIRTH,DBIRTH,DDATA")
    births = [("spBv1.0/G/NBIRTH/E1", payload(1, metric("n", 1, 3, 1))),
              ("spBv1.0/G/NBIRTH/E2", payload(1, metric("n", 1, 3, 2))),  # another node: not kept
              ("spBv1.0/G/DBIRTH/E1/d1", payload(1, metric("m", 1, 3, 3))),
              ("spBv1.0/G/DBIRTH/E1/d2", payload(1, metric("m", 1, 3, 4)))]  # another device: not kept
    data = [("spBv1.0/G/NDATA/E1", payload(2, metric(alias=1, value=5, datatype=3))),  # NDATA not asked for
            ("spBv1.0/G/DDATA/E1/d1", payload(2, metric(alias=1, value=6, datatype=3)))]
    out = _emit(src, *births, *data)
    got = sorted((b.spec.tag_values[1], b.spec.tag_values[2], v) for b in out if b.spec.stable == "spb_int32"
                 for v in b.data.column("val").to_pylist())
    assert got == [("E1", "", 1), ("E1", "d1", 3), ("E1", "d1", 6)]
