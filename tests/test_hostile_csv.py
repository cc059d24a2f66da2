"""Hostile CSV lines (issue 25): every bad line goes through --on-error alone, named by file:line;
the good ones land exactly. A corpus of the cases found by hand, and a property test that breaks
random lines of a good file in random ways."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tdetl
from tdetl.errors import DataError

from .conftest import run_cli

HEADER = "tbname,ts,current,voltage,phase,groupid,location"
PARSER = json.dumps({
    "parse": {"ts": {"as": "TIMESTAMP(ms)"}, "current": {"as": "FLOAT"}, "voltage": {"as": "INT"},
              "phase": {"as": "FLOAT"}, "groupid": {"as": "INT"}, "location": {"as": "VARCHAR(64)"}},
    "model": {"name": "${tbname}", "using": "meters", "tags": ["groupid", "location"],
              "columns": ["ts", "current", "voltage", "phase"]}})


def _good(i: int) -> str:
    return f"d{i % 3},{1_700_000_000_000 + i},{i / 4},{200 + i},0.5,{i % 3},\"Loc, {i % 3}\""


# (bad line, what the reason says); each stands alone between good lines
CORPUS = [
    ("d2,1700000099998,11.2", "3 fields where the header has 7"),
    ("d2,1700000099998,11.2,220,0.3,1,SF,extra", "8 fields where the header has 7"),
    ('d2,1700000099998,11.2,220,0.3,1,"open', "a quote opened on this line is not closed"),
    ("d2,1700000099998,11.2,220,0.3,1,\udcffbad", "not valid UTF-8"),
    ("d2", "1 fields where the header has 7"),
    (",,,,,,,", "8 fields where the header has 7"),
    ("d2,1700000099998,11.2,220,0.3,1," + "x" * 100_000 + ",y", "8 fields where the header has 7"),
]


def _write(path: Path, lines: list[str], gz: bool = False) -> None:
    data = ("\n".join([HEADER, *lines]) + "\n").encode("utf-8", "surrogateescape")
    path.write_bytes(gzip.compress(data) if gz else data)


def _landed(db: Path) -> list[tuple[object, ...]]:
    return duckdb.connect(str(db)).sql("SELECT tbname, epoch_ms(ts), voltage, location FROM meters ORDER BY ts"
                                       ).fetchall()


def _want(ids: list[int]) -> list[tuple[object, ...]]:
    return [(f"d{i % 3}", 1_700_000_000_000 + i, 200 + i, f"Loc, {i % 3}") for i in sorted(ids)]


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("bad,reason", CORPUS, ids=[r for _, r in CORPUS])
def test_each_bad_line_alone_goes_through_the_policy(tmp_path: Path, bad: str, reason: str, gz: bool) -> None:
    src = tmp_path / ("in.csv.gz" if gz else "in.csv")
    _write(src, [_good(0), _good(1), bad, _good(3), _good(4)], gz)
    db = tmp_path / "out.duckdb"
    res = run_cli("run", "-f", f"csv:{src}", "-p", PARSER, "-t", f"duckdb:{db}")  # --on-error error
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert f"{src}:4: {reason}" in res.stderr and len(res.stderr) < 600, res.stderr
    archive = tmp_path / "bad.jsonl"
    s = tdetl.run(f"csv:{src}", f"duckdb:{db}", parser=PARSER, on_error=f"archive:{archive}")
    assert (s.rows_failed, s.rows_written) == (1, 4)
    assert _landed(db) == _want([0, 1, 3, 4])
    kept = [json.loads(x) for x in archive.read_text().splitlines()]
    assert [(k["record"]["line"], reason in k["reason"]) for k in kept] == [(4, True)]
    assert len(kept[0]["record"]["text"]) < 300  # a 100 kB line is not echoed whole


def test_quoted_newlines_stay_one_record_and_blank_lines_are_no_rows(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    _write(src, [_good(0), "", 'd1,1700000000001,0.25,201,0.5,1,"two', 'lines"', "", _good(2)])
    db = tmp_path / "out.duckdb"
    s = tdetl.run(f"csv:{src}", f"duckdb:{db}", parser=PARSER)
    assert (s.rows_failed, s.rows_written) == (0, 3)
    assert [r[3] for r in _landed(db)] == ["Loc, 0", "two\nlines", "Loc, 2"]


def test_a_resumed_file_does_not_report_its_bad_lines_twice(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    _write(src, [_good(0), "bad", _good(2), "worse", _good(4)])
    archive = tmp_path / "bad.jsonl"
    with pytest.raises(DataError, match=r"in.csv:3: 1 fields"):
        tdetl.run(f"csv:{src}", f"duckdb:{tmp_path / 'x.duckdb'}", parser=PARSER)
    s = tdetl.run(f"csv:{src}", f"local:{tmp_path / 'bk'}?file_rows=1", parser=PARSER, batch_rows=1,
                  on_error=f"archive:{archive}")
    assert s.rows_failed == 2 and [json.loads(x)["record"]["line"] for x in archive.read_text().splitlines()] == [3, 5]


_BREAKS = st.sampled_from(["short", "long", "open-quote", "bad-utf8", "blank"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 60), broken=st.dictionaries(st.integers(0, 59), _BREAKS, max_size=12))
def test_property_bad_lines_out_good_lines_exact(tmp_path: Path, n: int, broken: dict[int, str]) -> None:
    """Any mix of broken lines in a good file: exactly the broken ones are reported (by line), every
    other row lands unchanged, blank lines are no rows; never a crash or a silent change."""
    broken = {i: how for i, how in broken.items() if i < n}
    lines = []
    for i in range(n):
        how = broken.get(i)
        good = _good(i)
        lines.append({None: good, "short": good.rsplit(",", 3)[0], "long": good + ",extra",
                      "open-quote": good.replace('"Loc, ', '"Loc; ').rstrip('"'), "blank": "",
                      "bad-utf8": good.replace("Loc", "L\udcffc")}[how])
    name = uuid.uuid4().hex  # hypothesis runs an example more than once
    src = tmp_path / f"{name}.csv"
    _write(src, lines)
    db = tmp_path / f"{name}.duckdb"
    archive = tmp_path / f"{name}.jsonl"
    if len(broken) == n and all(h == "blank" for h in broken.values()):
        return  # a file of blank lines holds no rows to compare
    s = tdetl.run(f"csv:{src}", f"duckdb:{db}", parser=PARSER, on_error=f"archive:{archive}")
    reported = sorted(json.loads(x)["record"]["line"] for x in archive.read_text().splitlines()) \
        if archive.exists() else []
    assert reported == sorted(i + 2 for i, how in broken.items() if how != "blank")
    good = [i for i in range(n) if i not in broken]
    assert s.rows_written == len(good) and s.rows_failed == len(reported)
    if good:
        assert _landed(db) == _want(good)


def test_a_truncated_gzip_file_is_named(tmp_path: Path) -> None:
    src = tmp_path / "cut.csv.gz"
    whole = gzip.compress(("\n".join([HEADER, *(_good(i) for i in range(20_000))]) + "\n").encode())
    src.write_bytes(whole[: len(whole) // 2])
    res = run_cli("run", "-f", f"csv:{src}", "-p", PARSER, "-t", f"duckdb:{tmp_path / 'o.duckdb'}")
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and str(src) in res.stderr, res.stderr


@pytest.mark.parametrize("how", ["name-illegal=replace", "name-too-long=truncate"])
@pytest.mark.parametrize("batch_rows", [1, 100])
def test_repaired_names_that_meet_are_a_situation(tmp_path: Path, how: str, batch_rows: int) -> None:
    """a.b, a`b and a_b (or three names alike in their first 192 bytes) once became one table holding
    one row with the first record's tags, and the run said it wrote 3 rows."""
    long = "n" * 200
    names = ["a.b", "a`b", "a_b"] if how.startswith("name-illegal") else [long + "1", long + "2", long[:192]]
    src = tmp_path / "in.csv"
    _write(src, [f"{n},1700000000000,{i}.5,22{i},0.3,{i},L{i}" for i, n in enumerate(names)])
    db = tmp_path / "out.duckdb"
    with pytest.raises(DataError, match="both become table"):
        tdetl.run(f"csv:{src}", f"duckdb:{db}", parser=PARSER, on=[how], batch_rows=batch_rows)
    s = tdetl.run(f"csv:{src}", f"duckdb:{tmp_path / 'kept.duckdb'}", parser=PARSER,
                  on=[how, "name-collision=suffix"], batch_rows=batch_rows)
    got = duckdb.connect(str(tmp_path / "kept.duckdb")).sql(
        "SELECT tbname, location FROM meters ORDER BY location").fetchall()
    assert s.rows_written == 3 and len({t for t, _ in got}) == 3 and [loc for _, loc in got] == ["L0", "L1", "L2"]
    assert all(len(t.encode()) <= 192 for t, _ in got)
    s = tdetl.run(f"csv:{src}", f"duckdb:{tmp_path / 'merged.duckdb'}", parser=PARSER,
                  on=[how, "name-collision=merge"], batch_rows=batch_rows)
    assert s.outcomes.get("name-collision merged") == 2
