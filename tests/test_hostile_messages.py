"""Hostile broker messages (issue 25): each bad one goes through the policy alone, named by
topic/partition@offset; the good ones around it land exactly; no message crashes the process (a
JSON document nested 600 deep used to kill it inside Polars). A corpus, a property test over the
parser, and a real Kafka run whose poison messages are committed past."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tdetl
from tdetl.errors import DataError, ErrorPolicy
from tdetl.quality import Rejects
from tdetl.transform.messages import MessageParser, Messages
from tdetl.transform.parser import load_parser

from .services import Tansu
from .test_kafka import _produce, _topic

FIELDS = {"parse": {"value": {"json": ["id::int", "ts::timestamp(ms)", "temp::double", "dev::varchar(16)"]}},
          "model": {"name": "dev_{dev}", "using": "readings", "tags": ["dev"], "columns": ["ts", "id", "temp"]}}
PAYLOAD = {"parse": {"payload": {"json": [
    {"name": "id", "cast": "INT"}, {"name": "ts", "cast": "TIMESTAMP(ms)"}, {"name": "$.m.temp", "alias": "temp",
                                                                             "cast": "DOUBLE"},
    {"name": "dev", "cast": "VARCHAR(16)"}]}},
    "model": {"name": "dev_{dev}", "using": "readings", "tags": ["dev"], "columns": ["ts", "id", "temp"]}}
T0 = 1_700_000_000_000


def _good(i: int, form: str) -> bytes:
    doc: dict[str, Any] = {"id": i, "ts": T0 + i, "dev": f"d{i % 2}"}
    if form == "payload":
        doc["m"] = {"temp": i / 4}
    else:
        doc["temp"] = i / 4
    return json.dumps(doc).encode()


def _with(form: str, **kv: str) -> bytes:
    """A message whose fields are given as raw JSON text (so NaN, 1e400 and the like stay as written)."""
    base = {"id": "7", "ts": str(T0 + 7), "dev": '"d1"', "temp": "1.5"}
    base.update(kv)
    temp = base.pop("temp")
    inner = ",".join(f'"{k}":{v}' for k, v in base.items())
    return (f'{{{inner},"m":{{"temp":{temp}}}}}' if form == "payload" else f'{{{inner},"temp":{temp}}}').encode()


CORPUS = {
    "nested 600": lambda f: _with(f, temp='{"a":' * 600 + "1" + "}" * 600),
    "nested 10000": lambda f: _with(f, temp="[" * 10_000 + "]" * 10_000),
    "unbalanced 5000": lambda f: b'{"id":' + b"[" * 5000,
    "NaN": lambda f: _with(f, temp="NaN"),
    "Infinity": lambda f: _with(f, temp="-Infinity"),
    "1e400": lambda f: _with(f, temp="1e400"),
    "true for a number": lambda f: _with(f, temp="true"),
    "object for a number": lambda f: _with(f, temp='{"x":1}'),
    "ts 1e19": lambda f: _with(f, ts="1e19"),
    "ts -1e30": lambda f: _with(f, ts="-1e30"),
    "id beyond INT": lambda f: _with(f, id="99999999999999999999999"),
    "not JSON": lambda f: b"{not json",
    "empty": lambda f: b"",
    "huge string": lambda f: _with(f, dev='"' + "x" * 200_000 + '"'),
}


def _parse(form: str, payloads: list[bytes], mode: str = "archive") -> tuple[list[dict[str, Any]], Rejects]:
    parser = MessageParser(load_parser(json.dumps(FIELDS if form == "fields" else PAYLOAD)), None, "kafka://b")
    n = len(payloads)
    msgs = Messages(payloads, ["t"] * n, [0] * n, list(range(n)), [None] * n, [0] * n)
    rejects = Rejects(ErrorPolicy(mode, None))
    rejects.archive = lambda: _Kept()  # type: ignore[method-assign]
    out = parser.parse(msgs, rejects, "t/0", n)
    rows = [r for b in out for r in b.data.to_pylist()]
    return sorted(rows, key=lambda r: r["id"]), rejects


class _Kept:
    def write(self, situation: str, reasons: list[str], records: list[dict[str, Any]]) -> None:
        assert all(len(r) <= 700 for r in reasons)  # a reason quotes a value cut to its bound
        for r in records:
            assert all(len(str(v)) <= 10_100 for v in r.values())  # a value is never kept whole past its bound


def _want(ids: list[int]) -> list[dict[str, Any]]:
    from datetime import datetime, timezone

    return [{"ts": datetime.fromtimestamp((T0 + i) / 1000, timezone.utc).replace(tzinfo=None), "id": i,
             "temp": i / 4} for i in sorted(ids)]


@pytest.mark.parametrize("form", ["fields", "payload"])
@pytest.mark.parametrize("case", list(CORPUS))
def test_a_bad_message_goes_alone(form: str, case: str) -> None:
    payloads = [_good(0, form), CORPUS[case](form), _good(2, form)]
    if case == "huge string":  # not bad: VARCHAR(16) is the value-too-long situation, which errors by default
        with pytest.raises(DataError, match=r"message t/0@1: column 'dev' value 'xxxx") as e:
            _parse(form, payloads, "error")
        assert "(200,000 characters)" in str(e.value) and len(str(e.value)) < 800
        return
    with pytest.raises(DataError, match=r"message t/0@1: "):
        _parse(form, payloads, "error")
    rows, rejects = _parse(form, payloads)
    assert rows == _want([0, 2]) and rejects.failed == 1, rejects.examples


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(sorted(CORPUS))), min_size=1, max_size=25),
       st.sampled_from(["fields", "payload"]))
def test_property_any_mix_of_bad_messages(kinds: list[str | None], form: str) -> None:
    """Whatever bad messages are mixed in, exactly the good ones come out, each bad one counted once."""
    kinds = [k if k != "huge string" else None for k in kinds]
    payloads = [_good(i, form) if k is None else CORPUS[k](form) for i, k in enumerate(kinds)]
    rows, rejects = _parse(form, payloads)
    good = [i for i, k in enumerate(kinds) if k is None]
    assert rows == _want(good)
    assert rejects.failed == len(kinds) - len(good)


def test_a_poison_message_is_committed_past_not_fatal(tansu: Tansu, tmp_path: Path) -> None:
    """A Kafka task with --on-error drop meets a deep message, NaN and 1e19: it goes on, commits past them,
    and a second run of the same group reads nothing again."""
    topic = _topic(tansu, 1)
    values = [_good(i, "fields") for i in range(50)]
    values[10] = CORPUS["nested 600"]("fields")
    values[20] = CORPUS["NaN"]("fields")
    values[30] = CORPUS["ts 1e19"]("fields")
    _produce(tansu, topic, values)
    url = f"kafka://{tansu.bootstrap}?session_timeout=2s&topics={topic}&timeout=1500&group=g{uuid.uuid4().hex[:6]}"
    out = tmp_path / "out.duckdb"
    s = tdetl.run(url, f"duckdb:{out}", parser=json.dumps(FIELDS), on_error="drop")
    assert (s.rows_written, s.rows_failed) == (47, 3)
    got = duckdb.connect(str(out)).sql("SELECT id FROM readings ORDER BY id").fetchall()
    assert [r[0] for r in got] == [i for i in range(50) if i not in (10, 20, 30)]
    again = tdetl.run(url, f"duckdb:{tmp_path / 'again.duckdb'}", parser=json.dumps(FIELDS), on_error="drop")
    assert again.rows_read == 0
