"""The WebSocket transport against a replay of a real taosAdapter 3.3.7.5 exchange."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tdetl import rawblock
from tdetl.errors import TaosError
from tdetl.model import Column
from tdetl.taos.conn import refuse_blob
from tdetl.taos.ws import WsConnection

from .fakes.ws_replay import Replay
from .test_rawblock import _load, _plain, _value


def test_client_speaks_the_recorded_exchange(golden: Path) -> None:
    meta, block, _ = _load(golden, "alltypes_ms")
    with Replay(golden / "ws_exchange.json") as server:
        conn = WsConnection(server.url, "root", "taosdata", db="golden_ms", timeout=10)
        assert conn.server_version == "3.3.7.5.alpha"
        conn.execute("drop table if exists ws_wb")
        conn.execute("create table ws_wb using alltypes tags (9, 'ws', 'ws')")
        conn.execute("drop table if exists ws_wb4")
        conn.execute("create table ws_wb4 using alltypes tags (10, 'ws4', 'ws4')")

        res = conn.query("select * from d0")
        assert [c.name for c in res.fields][:3] == ["ts", "c_bool", "c_i8"]
        assert [str(c.type) for c in res.fields][-2:] == ["DECIMAL(10,2)", "DECIMAL(30,6)"]
        blocks = [bytes(b) for b in res.blocks()]
        assert blocks == [block]  # action 7 carries exactly the bytes of taos_fetch_raw_block
        batch = rawblock.decode(blocks[0], res.fields, res.precision)
        assert _plain(batch) == [[_value(v) for v in r] for r in meta["values"]]

        conn.write_block("ws_wb", rawblock.encode(batch, res.fields, "ms"), res.fields)
        conn.write_block("ws_wb4", block, None)
        with pytest.raises(TaosError, match=r"Table does not exist") as e:
            conn.write_block("no_such_table", block, res.fields)
        assert e.value.code == 9731
        count = conn.query("select count(*) from ws_wb")
        assert [(c.name, str(c.type)) for c in count.fields] == [("count(*)", "BIGINT")]
        conn.close()
    assert server.mismatches == []
    assert server.done


def test_a_request_that_differs_from_the_recording_is_caught(golden: Path) -> None:
    with Replay(golden / "ws_exchange.json") as server:
        conn = WsConnection(server.url, "root", "taosdata", db="golden_ms", timeout=5)
        with pytest.raises(TaosError, match="connection lost"):
            conn.execute("drop table if exists something_else")
    assert len(server.mismatches) == 1 and "something_else" in server.mismatches[0]


def test_unreachable_adapter_is_one_line_without_password() -> None:
    with pytest.raises(TaosError, match=r"\[0x000B\] Unable to establish connection") as e:
        WsConnection("ws://127.0.0.1:9/ws", "root", "s3cret", timeout=2, where="taos+ws://root:***@127.0.0.1:9")
    assert "s3cret" not in str(e.value) and "\n" not in str(e.value)


def test_transcript_fields_match_what_pack_fields_writes(golden: Path) -> None:
    """The 72-byte TAOS_FIELDs our with_fields write appends equal the recorded ones."""
    from tdetl.taos.fields import pack_fields

    frames = json.loads((golden / "ws_exchange.json").read_text())["transcript"]
    write = next(bytes.fromhex(f["data"]) for f in frames if f["kind"] == "binary"
                 and int.from_bytes(bytes.fromhex(f["data"])[16:24], "little") == 5)
    _, _block, fields = _load(golden, "alltypes_ms")
    assert write.endswith(pack_fields(fields))
    assert len(pack_fields(fields)) == 72 * len(fields)


def test_a_blob_block_is_never_sent(golden: Path) -> None:
    """A BLOB raw block kills the 3.3.7.5 client and taosAdapter: refused before anything is sent,
    whether the fields are given or read from the block itself."""
    block = (golden / "blob.block").read_bytes()
    for fields in (None, [Column(f"c{i}", t) for i, t in enumerate(rawblock.block_types(block))]):
        with pytest.raises(TaosError, match="BLOB is written as SQL text"):
            refuse_blob(block, fields, "taos+ws://h:6041")
    refuse_blob((golden / "meters_5000.block").read_bytes(), None, "taos+ws://h:6041")  # others pass
