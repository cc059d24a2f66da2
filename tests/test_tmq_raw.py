"""The TMQ raw data format, from messages a real server produced (formats/samples/tmq/): blocks,
table names and schemas parsed, rows decoded; damaged messages refused with a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tdetl import rawblock
from tdetl.drivers.common.acks import Pending
from tdetl.errors import DataError
from tdetl.source import DONE
from tdetl.taos import tmq_raw

SAMPLES = Path(__file__).resolve().parent.parent / "formats" / "samples" / "tmq"


def _rows(raw: bytes) -> list[tuple[str, list[str], list[dict]]]:
    out = []
    for t in tmq_raw.parse(raw):
        data = rawblock.decode(t.block, t.columns, t.precision)
        out.append((t.table, [f"{c.name} {c.type}" for c in t.columns],
                    [{k: (v.timestamp() * 1000 if hasattr(v, "timestamp") else v) for k, v in r.items()}
                     for r in data.to_pylist()]))
    return out


def test_a_data_message_decodes_to_its_rows() -> None:
    got = _rows((SAMPLES / "data_type2.bin").read_bytes())
    assert got == [("d1", ["ts TIMESTAMP", "v INT", "s VARCHAR(10)", "w BIGINT"],
                    [{"ts": 1700000002000, "v": 4, "s": "z", "w": 9}])]
    assert tmq_raw.row_count((SAMPLES / "data_type2.bin").read_bytes()) == 1


def test_a_metadata_message_decodes_its_data_part() -> None:
    got = _rows((SAMPLES / "metadata_type4.bin").read_bytes())
    assert got == [("d1", ["ts TIMESTAMP", "v INT", "s VARCHAR(10)"],
                    [{"ts": 1700000000000, "v": 1, "s": "x"}, {"ts": 1700000001000, "v": 2, "s": None}])]


def test_a_cut_message_is_refused() -> None:
    raw = (SAMPLES / "data_type2.bin").read_bytes()
    for cut in (3, 40, len(raw) - 20):
        with pytest.raises(DataError, match=r"TMQ raw data ends early"):
            _rows(raw[:cut])


def test_acknowledged_sequence_numbers_release_tokens_in_order() -> None:
    p: Pending[str] = Pending()
    a, b, c = p.add("c0", "a"), p.add("c0", "b"), p.add("c1", "c")
    assert p.durable({"c0": a}) == {"c0": ["a"]}
    assert p.durable({"c0": {"seq": b, "offsets": {}}, "c1": "not a position"}) == {"c0": ["b"]}
    assert p.any() and p.durable({"c1": DONE}) == {"c1": ["c"]} and not p.any()
    assert c > b > a
