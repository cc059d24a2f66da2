"""Progress line on a terminal and the end-of-run summary."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TextIO

from .durable import replace_text


class Lag(NamedTuple):
    """How far a source is behind its newest data, in its own unit: "offsets" (Kafka messages, TMQ
    WAL entries) or "seconds" (a realtime query's window end behind now)."""

    value: float
    unit: str


# the counters a run reports outside its process: tdetl serve's status file, a cluster share's result
log = logging.getLogger("tdetl")

LOG_EVERY = 10.0  # seconds between -v progress lines
COUNTERS = ("rows_read", "rows_written", "rows_failed", "rows_filtered", "bytes_written", "batches_written")


@dataclass
class Summary:
    rows_read: int = 0
    rows_written: int = 0
    rows_failed: int = 0
    rows_filtered: int = 0  # dropped on purpose by a parser filter
    rows_pending: int = 0  # acknowledged to the source, waiting in the write cache: not in the target yet
    bytes_written: int = 0
    batches_written: int = 0
    tables: int = 0
    table_names: list[str] = field(default_factory=list, repr=False)  # [db.]table, for a cluster run's union
    partitions_skipped: int = 0
    partitions_done: int = 0  # of this run's partitions (tables, files, windows…), read to their end
    partitions_total: int = 0  # this run's partitions; 0 when the source never ends (a consumer)
    skipped: list[str] = field(default_factory=list)  # the first reasons records were skipped for
    outcomes: dict[str, int] = field(default_factory=dict)  # "<situation> <outcome>" -> records (tdetl.quality)
    elapsed: float = 0.0
    started: float = field(default_factory=time.perf_counter, repr=False)

    @property
    def complete(self) -> bool:
        """Every row the run acknowledged is in the target (none waits in a write cache)."""
        return self.rows_pending == 0

    def counters(self) -> dict[str, int]:
        return {k: int(getattr(self, k)) for k in COUNTERS}

    @property
    def rows_per_second(self) -> float:
        return self.rows_written / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        resumed = f", {self.partitions_skipped} parts already done" if self.partitions_skipped else ""
        resumed += f", filtered out {self.rows_filtered:,}" if self.rows_filtered else ""
        resumed += f", {self.rows_pending:,} rows wait in the write cache, not in the target yet" \
            if self.rows_pending else ""
        return (f"read {self.rows_read:,} rows, wrote {self.rows_written:,} rows"
                f" ({_size(self.bytes_written)} as Arrow) to {self.tables:,} tables, failed {self.rows_failed:,}"
                f"{resumed}; {self.elapsed:.2f} s, {self.rows_per_second:,.0f} rows/s{outcomes(self.outcomes)}")


def outcomes(counts: dict[str, int]) -> str:
    """``; ts-null dropped 3, name-too-long truncated 1``: each situation's outcomes, never silent."""
    return "; " + ", ".join(f"{k} {n:,}" for k, n in sorted(counts.items())) if counts else ""


def _duration(seconds: float) -> str:
    m, sec = divmod(int(seconds + 0.5), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s" if m else f"{sec}s"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class Progress:
    """Redraws one status line at most every ``interval`` seconds; silent unless enabled."""

    def __init__(self, summary: Summary, enabled: bool | None = None, stream: TextIO = sys.stderr,
                 interval: float = 0.25, counts: Callable[[], dict[str, int]] | None = None,
                 status: str | None = None, lag: Callable[[], Lag | None] | None = None) -> None:
        self.summary, self.stream, self.interval = summary, stream, interval
        self.counts = counts  # the run's outcomes per situation, read live
        self.enabled = stream.isatty() if enabled is None else enabled
        self.status = status  # a file rewritten with the counters every second (tdetl serve reads it)
        self.lag = lag  # the source's distance to its newest data, where it knows one
        self._last = self._last_status = 0.0
        self._last_log = time.perf_counter()
        self._drawn = False

    def write_status(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self.status is None or (not force and now - self._last_status < 1.0):
            return
        self._last_status = now
        s = self.summary
        doc: dict[str, object] = {**s.counters(), "elapsed": now - s.started,
                                  "outcomes": self.counts() if self.counts else {}, "time": time.time()}
        lag = self.lag() if self.lag else None
        if lag is not None:
            doc["lag"], doc["lag_unit"] = lag.value, lag.unit
        replace_text(Path(self.status), json.dumps(doc))

    def update(self) -> None:
        self.write_status()
        now = time.perf_counter()
        s = self.summary
        elapsed = now - s.started
        rate = s.rows_written / elapsed if elapsed > 0 else 0.0
        parts = f"{s.partitions_done:,}/{s.partitions_total:,} parts" if s.partitions_total > 1 else ""
        if parts and 0 < s.partitions_done < s.partitions_total:  # as the parts so far went: parts differ, so ~
            parts += f", ~{_duration(elapsed * (s.partitions_total - s.partitions_done) / s.partitions_done)} left"
        if now - self._last_log >= LOG_EVERY:  # -v: a line now and then, for logs and non-terminals
            self._last_log = now
            log.info("%s rows written, %s rows/s%s", f"{s.rows_written:,}", f"{rate:,.0f}",
                     f", {parts} done" if parts else "")
        if not self.enabled or now - self._last < self.interval:
            return
        self._last = now
        seen = outcomes(self.counts()) if self.counts else ""
        self.stream.write(f"\r{s.rows_written:>14,} rows  {rate:>12,.0f} rows/s  "
                          f"{_size(s.bytes_written):>10} as Arrow  {parts:>26}  {elapsed:7.1f} s{seen} ")
        self.stream.flush()
        self._drawn = True

    def done(self) -> None:
        self.write_status(force=True)
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
