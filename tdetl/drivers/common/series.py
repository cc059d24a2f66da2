"""What the time-series database sources (InfluxDB, OpenTSDB) share: the seed's time range
(``beginTime``, ``endTime``, ``readWindow``), reading it window by window with resume and open-ended
polling, and turning one series into a child-table batch named by a stable hash of its key."""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Iterator, Mapping
from typing import Any

import polars as pl

from ...errors import DsnError
from ...model import Column, TableBatch, TableSpec, conform
from ...params import seconds
from ...polars_types import sized
from ...types import TDType

NS = 1_000_000_000
WINDOWS = {"D": 86_400, "H": 3_600, "M": 60}


def rfc3339(ns: int) -> str:
    """Nanosecond instant as RFC 3339 UTC with all nine digits (what Flux range() takes)."""
    s, frac = divmod(ns, NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{frac:09d}Z"


SPANS = 8  # a measurement's spans in a cluster run


class TimeRange:
    """``beginTime`` (required), ``endTime`` (absent: keep polling), ``readWindow`` (D/H/M or a
    duration such as ``10s``; default M), ``timeout`` (stop polling after this long without data) and,
    where a driver declares it, ``delay`` (a window is read once it closed this long ago)."""

    def __init__(self, cfg: Mapping[str, Any], where: str) -> None:
        if cfg["beginTime"] is None:
            raise DsnError(f"{where}: beginTime is required, e.g. beginTime=2023-06-01T00:00:00+0800")
        self.begin: int = cfg["beginTime"]
        self.end: int | None = cfg["endTime"]
        if self.end is not None and self.end <= self.begin:
            raise DsnError(f"{where}: endTime must be after beginTime")
        win = cfg["readWindow"] or "M"
        if win.upper() in WINDOWS:
            self.window = WINDOWS[win.upper()] * NS
        else:
            self.window = int((seconds(win) or 0) * NS)
            if self.window <= 0:
                raise DsnError(f"{where}: readWindow={win!r} must be D, H, M or a duration such as 10s")
        self.idle: float | None = cfg["timeout"]
        self.delay = int((cfg.get("delay") or 0) * NS)  # polling stays this far behind now (rows arriving late)
        self._last_data = time.monotonic()

    @property
    def stop(self) -> int:
        """Where the data known now ends: ``endTime``, or now when polling."""
        return self.end if self.end is not None else time.time_ns()

    def windows(self, start: int | None, span: tuple[int, int] | None = None) -> Iterator[tuple[int, int]]:
        """``[lo, hi)`` windows from ``start`` (a resume position) or ``beginTime`` (or the span's
        start), oldest first, up to ``endTime`` (or the span's end). Without ``endTime`` a window is
        handed out once it has closed, so late points are read."""
        first, end = span if span is not None else (self.begin, self.end)
        lo = first if start is None else int(start)
        self._last_data = time.monotonic()
        while True:
            hi = lo + self.window
            if end is not None:
                if lo >= end:
                    return
                hi = min(hi, end)
            else:
                now = time.time_ns() - self.delay
                if hi > now:  # still open: wait for it to close
                    if self.idle is not None and time.monotonic() - self._last_data >= self.idle:
                        return
                    time.sleep(min((hi - now) / NS, 1.0))
                    continue
            yield lo, hi
            lo = hi

    def saw_data(self) -> None:
        self._last_data = time.monotonic()

    def partitions(self, names: list[str], cut: bool) -> list[str]:
        """A partition per measurement (metric); with ``cut`` (a cluster run) and an ``endTime``,
        one per span of whole windows (``<name>@<lo>-<hi>``, at most ``SPANS``), so one large
        measurement spreads over many workers."""
        if not cut or self.end is None:
            return list(names)
        count = -(-(self.end - self.begin) // self.window)
        n = min(SPANS, count)
        cuts = [min(self.end, self.begin + (i * count // n) * self.window) for i in range(n + 1)]
        return [f"{m}@{lo}-{hi}" for m in names for lo, hi in itertools.pairwise(cuts)]

    @staticmethod
    def span_of(partition: str) -> tuple[str, tuple[int, int] | None]:
        """The measurement a partition reads, and its span if it is one."""
        name, at, span = partition.rpartition("@")
        lo, dash, hi = span.partition("-")
        if at and dash and lo.isdigit() and hi.isdigit():
            return name, (int(lo), int(hi))
        return partition, None


def stable_name(measurement: str) -> str:
    """A measurement or metric as a super table: dots become underscores, as TDengine's own
    schemaless ingestion does (``smlDot2Underline``), since a dotted name reads as ``db.table``."""
    return measurement.replace(".", "_")


def child_name(key: str, tagvals: dict[str, str | None], template: str | None, where: str) -> str:
    """``t_<md5(series key)[:16]>``, stable across runs and versions, or the ``tbname`` template."""
    if template:
        try:
            return template.format(**{k: v or "" for k, v in tagvals.items()})
        except (KeyError, IndexError, ValueError) as e:
            raise DsnError(f"{where}: tbname={template!r} names {e}, which is not a tag") from None
    return "t_" + hashlib.md5(key.encode()).hexdigest()[:16]


def series_key(measurement: str, tagvals: dict[str, str | None]) -> str:
    """InfluxDB's series key: ``measurement,k=v,...`` with tags sorted by key, absent tags left out."""
    return measurement + "".join(f",{t}={v}" for t, v in sorted(tagvals.items()) if v is not None)


def series_batch(stable: str, database: str | None, fields: list[tuple[str, TDType]], tags: list[str],
                 tagvals: dict[str, str | None], data: pl.DataFrame, name: str, precision: str,
                 partition: str) -> TableBatch:
    """One series' rows (``ts`` then the fields, as in ``fields``) as a child-table batch."""
    cols = [Column("ts", TDType("TIMESTAMP"))] + [Column(f, sized(t, data[f])) for f, t in fields]
    tagcols = [Column(t, sized(TDType("VARCHAR"), pl.Series([tagvals.get(t) or ""]))) for t in tags]
    spec = TableSpec(name, tuple(cols), database, stable, tuple(tagcols), tuple(tagvals.get(t) for t in tags),
                     precision)
    return TableBatch(spec, conform(data.to_arrow(), spec), partition, None)
