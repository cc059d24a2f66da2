"""The taos target without a server: its parameters and its failure to connect. (Writing to a real
server is covered by test_taos_integration.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tdetl.drivers import open_sink
from tdetl.errors import DsnError
from tdetl.pipeline import Options

from .conftest import SAMPLES, run_cli


@pytest.mark.parametrize("dsn,match", [
    ("taos+ws://root:s3cret@h:6041?asert", "unknown parameter 'asert'"),  # every database: the same parameters
    ("taos+ws://root:s3cret@h:6041/db?timeout-per-table=ever", "timeout-per-table='ever' is not valid: expected dur"),
    ("taos+ws://root:s3cret@h:6041/db?interval=soon", "taos parameter interval='soon' is not valid: expected duration"),
    ("taos+ws://root:s3cret@h:6041/db?max-sql-length=10", "max-sql-length='10' is not valid: expected integer >= 1024"),
    ("taos+ws://root:s3cret@h:6041/db?asert", "unknown parameter 'asert'"),
    ("taos+mqtt://root:s3cret@h:6041/db", "does not speak 'mqtt'"),
])
def test_bad_target_parameters(dsn: str, match: str) -> None:
    with pytest.raises(DsnError, match=match) as e:
        open_sink(dsn, Options())
    assert "s3cret" not in str(e.value)


def test_a_target_naming_no_database_writes_every_database_into_its_namesake() -> None:
    from tdetl.drivers.taos.every import EveryDatabase

    sink = open_sink("taos+ws://root:s3cret@h:6041?assert", Options())
    assert isinstance(sink, EveryDatabase) and sink.config["assert"] is True
    assert sink.dsn.with_object("db1").masked() == "taos+ws://root:***@h:6041/db1?assert"


def test_parameters_are_read(tmp_path: Path) -> None:
    sink = open_sink(f"taos+ws://h:6041/db.meters2?assert&interval=250ms&failes-to={tmp_path}/f.txt"
                     "&max-sql-length=4096&batch-size=500&update-tags&force-stmt&timeout-per-table=2m", Options())
    assert (sink.db, sink.rename, sink.create_db, sink.pause, sink.max_sql, sink.rows_per_block) == (
        "db", "meters2", True, 0.25, 4096, 500)
    assert sink.update_tags and sink.failes_to == tmp_path / "f.txt"
    assert sink.force_stmt and sink.table_timeout == 120


def test_unreachable_server_is_one_line_and_nothing_is_left(tmp_path: Path) -> None:
    res = run_cli("run", "-f", f"csv:{SAMPLES / 'meters.csv'}", "-p", f"@{SAMPLES / 'meters.parser.json'}",
                  "-t", "taos+ws://root:s3cret@127.0.0.1:9/db?assert")
    assert res.returncode == 1 and res.stderr.count("\n") == 1
    assert "[0x000B] Unable to establish connection" in res.stderr and "s3cret" not in res.stderr
