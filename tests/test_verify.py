"""``tdetl verify``: equal endpoints agree whatever their types and row order; a missing row, a
changed value, a changed tag, an extra table are each named (local backups and DuckDB exports
here; TDengine endpoints in the TMQ and sync suites)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

import tdetl
from tdetl.errors import ConfigError

from .conftest import run_cli
from .samples import PARSER, meters


@pytest.fixture
def pair(tmp_path: Path) -> tuple[str, str]:
    meters(160, tables=4).write_csv(tmp_path / "m.csv")
    backup, export = f"local:{tmp_path / 'b'}", f"duckdb:{tmp_path / 'x.duckdb'}"
    tdetl.run(f"csv:{tmp_path / 'm.csv'}", backup, parser=json.dumps(PARSER))
    tdetl.run(backup, export)
    return backup, export


def test_a_backup_and_its_duckdb_export_are_identical(pair: tuple[str, str]) -> None:
    report = tdetl.verify(*pair)
    assert report["differences"] == [] and report["tables"] == 4 and report["rows"] == 160
    res = run_cli("verify", "-f", pair[0], "-t", pair[1])
    assert res.returncode == 0 and "identical: 4 tables, 160 rows" in res.stdout


def _sql(export: str, *statements: str) -> None:
    with duckdb.connect(export.split(":", 1)[1]) as con:
        for s in statements:
            con.execute(s)


def test_each_kind_of_difference_is_named(pair: tuple[str, str]) -> None:
    backup, export = pair
    names = sorted({d for (d,) in duckdb.connect(export.split(":", 1)[1], read_only=True)
                    .execute("SELECT DISTINCT tbname FROM meters").fetchall()})
    first, second, third = names[:3]
    _sql(export,
         f"DELETE FROM meters WHERE tbname = '{first}' AND ts = (SELECT max(ts) FROM meters WHERE tbname = '{first}')",
         f"UPDATE meters SET current = current + 1 WHERE tbname = '{second}' AND voltage = (SELECT min(voltage)"
         f" FROM meters WHERE tbname = '{second}')",
         f"UPDATE meters SET location = 'elsewhere' WHERE tbname = '{third}'",
         "CREATE TABLE extra AS SELECT * FROM meters LIMIT 0")
    got = {d["table"]: d["what"] for d in tdetl.verify(backup, export)["differences"]}
    assert got == {first: "rows,last,checksum", second: "checksum", third: "tags"}
    res = run_cli("verify", "-f", backup, "-t", export)
    assert res.returncode == 1
    assert "3 of 4 tables differ" in res.stdout and second in res.stdout
    res = run_cli("verify", "-f", backup, "-t", export, "--json")
    assert {d["table"] for d in json.loads(res.stdout)["differences"]} == {first, second, third}


def test_a_time_range_limits_both_sides(pair: tuple[str, str]) -> None:
    backup, export = pair
    _sql(export, "DELETE FROM meters WHERE ts >= (SELECT max(ts) FROM meters)")
    assert tdetl.verify(backup, export)["differences"]
    early = tdetl.verify(backup, export, end="2023-11-14T22:13:30Z")
    assert early["differences"] == [] and 0 < early["rows"] < 160


def test_bad_times_and_endpoints_are_one_line_errors(pair: tuple[str, str], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--start: 'yesterday' is not a time"):
        tdetl.verify(*pair, start="yesterday")
    res = run_cli("verify", "-f", pair[0], "-t", f"duckdb:{tmp_path / 'none.duckdb'}")
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "no such DuckDB file" in res.stderr
