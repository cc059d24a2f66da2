from __future__ import annotations

from pathlib import Path

import pytest

from tdetl.samples import meters

ROWS = 1_000_000


@pytest.fixture(scope="session")
def meters_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1M rows of TDengine's meters shape (100 child tables) as one CSV file."""
    path = tmp_path_factory.mktemp("bench") / "meters.csv"
    meters(ROWS, tables=100).write_csv(path)
    return path
