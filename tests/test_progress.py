"""The progress line and the -v log line of a long run: rows, rate, parts done of N and the time
left as the parts so far went (a source of one part, or a consumer, shows no parts and no ETA)."""

from __future__ import annotations

import io
import logging

import pytest

from tdetl.progress import Progress, Summary


def _line(done: int, total: int, elapsed: float) -> str:
    s = Summary(rows_written=4000, partitions_done=done, partitions_total=total)
    s.started -= elapsed
    out = io.StringIO()
    Progress(s, True, stream=out, interval=0).update()
    return out.getvalue()


def test_parts_done_of_n_and_time_left() -> None:
    assert "4/10 parts, ~30s left" in _line(4, 10, 20.0)
    assert "1/100 parts, ~1h39m left" in _line(1, 100, 60.0)
    assert "0/10 parts" in _line(0, 10, 5.0) and "left" not in _line(0, 10, 5.0)
    assert "10/10 parts" in _line(10, 10, 5.0) and "left" not in _line(10, 10, 5.0)
    assert "parts" not in _line(0, 1, 5.0) and "parts" not in _line(0, 0, 5.0)  # one part; a consumer
    assert "as Arrow" in _line(1, 2, 1.0)  # says what the bytes are


def test_verbose_logs_a_progress_line(caplog: pytest.LogCaptureFixture) -> None:
    s = Summary(rows_written=12_345, partitions_done=3, partitions_total=7)
    s.started -= 10
    p = Progress(s, False, stream=io.StringIO())
    p._last_log -= 60  # as if the last line were a minute ago
    with caplog.at_level(logging.INFO, logger="tdetl"):
        p.update()
    assert any("12,345 rows written" in r.message and "3/7 parts" in r.message for r in caplog.records)
