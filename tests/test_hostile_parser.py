"""Hostile parser configs (issue 25): a config that cannot mean what it says is refused up front with
one line (ConfigError), before any row moves; none crashes, hangs or changes data silently. A
corpus of the cases found by hand and a property test that mutates a good config anywhere."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tdetl
from tdetl.errors import ConfigError, TdetlError

from .json_paths import json_paths

GOOD: dict[str, Any] = {
    "parse": {"ts": {"as": "TIMESTAMP(ms)"}, "current": {"as": "FLOAT"}, "voltage": {"as": "INT"},
              "location": {"as": "VARCHAR(24)"}},
    "transform": [{"split": "location", "separator": ".", "count": 2},
                  {"filter": "voltage > 0 && (current < 100 || voltage < 1000)"}],
    "model": {"name": "d_${location_1}", "using": "meters", "tags": ["location"],
              "columns": ["ts", "current", "voltage", "note"],
              "mapping": {"note": {"format": "v=${voltage}"}}},
}
CSV = "ts,current,voltage,location\n1700000000000,1.5,220,California.SF\n1700000000001,2.5,221,California.LA\n"

CORPUS = {
    "format opens a placeholder it never closes": (["model", "mapping", "note"], {"format": "${"}),
    "format with a stray ${ after a good one": (["model", "mapping", "note"], {"format": "${voltage} ${x"}),
    "split into 100,000,000 fields": (["transform", 0, "count"], 100_000_000),
    "split count as a float": (["transform", 0, "count"], 1e8),
    "parentheses 10,000 deep": (["transform", 1, "filter"], "(" * 10_000 + "voltage > 0" + ")" * 10_000),
    "unary minus 5,000 deep": (["transform", 1, "filter"], "-" * 5_000 + "voltage > 0"),
    "an expression of 1 MB": (["transform", 1, "filter"], "voltage > 0 && " * 80_000 + "true"),
    "a type that is no type": (["parse", "voltage", "as"], "INT(("),
    "a VARCHAR of -1": (["parse", "location", "as"], "VARCHAR(-1)"),
    "a model without columns": (["model", "columns"], []),
    "a tag that is no field": (["model", "tags"], ["nowhere"]),
}


def _set(cfg: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(cfg)
    node: Any = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def _run(tmp: Path, cfg: dict[str, Any] | str) -> Any:
    src = tmp / "in.csv"
    if not src.exists():
        src.write_text(CSV)
    out = tmp / f"out{len(list(tmp.glob('out*')))}.duckdb"
    return tdetl.run(f"csv:{src}", f"duckdb:{out}", parser=cfg if isinstance(cfg, str) else json.dumps(cfg))


def test_the_good_config_works(tmp_path: Path) -> None:
    assert _run(tmp_path, GOOD).rows_written == 2


@pytest.mark.parametrize("case", list(CORPUS))
def test_a_config_that_cannot_mean_what_it_says_is_refused(tmp_path: Path, case: str) -> None:
    path, value = CORPUS[case]
    with pytest.raises(ConfigError) as e:
        _run(tmp_path, _set(GOOD, path, value))
    assert "\n" not in str(e.value) and len(str(e.value)) < 700
    assert not list(tmp_path.glob("out*.duckdb")) or all(p.stat().st_size == 0 for p in tmp_path.glob("out*.duckdb"))


PATHS = json_paths(GOOD)
JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False)
                    | st.text(max_size=30) | st.sampled_from(["${", "${voltage}", "((", "INT", "VARCHAR(99999)",
                                                              "location", "ts", ""]),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(PATHS), JSON), min_size=1, max_size=3))
def test_property_any_mutation_is_refused_in_one_line_or_runs(tmp_path: Path, changes: list[Any]) -> None:
    cfg = GOOD
    for path, value in changes:
        try:
            cfg = _set(cfg, list(path), value)
        except (KeyError, IndexError, TypeError):  # an earlier change removed the place
            continue
    try:
        s = _run(tmp_path, cfg)
    except TdetlError as e:  # one line, bounded
        assert "\n" not in str(e) and len(str(e)) < 1000, str(e)
        return
    assert s.rows_written + s.rows_failed + s.rows_filtered == 2 or s.rows_written <= 2
