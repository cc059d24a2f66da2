"""The SQL template taosX's SQL sources take: ``${start}``/``${end}`` (RFC 3339 with the zone's
offset), ``${start_no_tz}``/``${end_no_tz}`` (the same instant as wall time in ``timezone``, for
columns without a zone), ``${start_date}``/``${end_date}`` (``YYYY-MM-DD`` there), and ``${col}`` for
each column of the subtable query's row. Values are rendered bare, so the template quotes them
(``ts >= '${start}'``); text values have their quotes (and for MySQL backslashes) escaped, so a
value cannot end the literal it sits in."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ...errors import DsnError, shown

_PLACEHOLDER = re.compile(r"\$\{([^{}]*)\}")
TIMES = ("start", "end", "start_no_tz", "end_no_tz", "start_date", "end_date")
_OFFSET = re.compile(r"([+-])(\d\d):?(\d\d)")
NS = 1_000_000_000


def zone(name: str, where: str) -> tzinfo:
    """``UTC``, an IANA name (``Asia/Shanghai``) or a fixed offset (``+08:00``)."""
    m = _OFFSET.fullmatch(name.strip())
    if m:
        minutes = int(m.group(2)) * 60 + int(m.group(3))
        return timezone(timedelta(minutes=-minutes if m.group(1) == "-" else minutes))
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise DsnError(f"{where}: timezone={shown(name, 60)} is not a time zone (UTC, Asia/Shanghai or +08:00)"
                       ) from None


def _fraction(ns: int) -> str:
    if not ns:
        return ""
    return f".{ns // 1000:06d}" if ns % 1000 == 0 else f".{ns:09d}"


def instant_text(t: int, tz: tzinfo) -> dict[str, str]:
    """The three renderings of one instant (epoch ns) in ``tz``."""
    s, frac = divmod(t, NS)
    wall = datetime.fromtimestamp(s, tz)
    base = wall.strftime("%Y-%m-%dT%H:%M:%S") + _fraction(frac)
    off = wall.strftime("%z")
    return {"": base + (off[:3] + ":" + off[3:] if off else "Z"), "_no_tz": base, "_date": wall.strftime("%Y-%m-%d")}


@dataclass(frozen=True)
class Template:
    text: str
    fields: tuple[str, ...]  # the ${...} names in it, in order of first use

    @classmethod
    def parse(cls, text: str, where: str, allowed: tuple[str, ...]) -> Template:
        """Every placeholder must be a time or a subtable column: a typo is refused, not sent."""
        names: list[str] = []
        for m in _PLACEHOLDER.finditer(text):
            name = m.group(1)
            if name not in TIMES and name not in allowed:
                known = ", ".join("${" + n + "}" for n in (*TIMES, *allowed))
                raise DsnError(f"{where}: sql has placeholder ${{{shown(name, 60, quote=False)}}}, which is neither a"
                               f" time nor a subtable column (known: {known})")
            if name not in names:
                names.append(name)
        return cls(text, tuple(names))

    @property
    def windowed(self) -> bool:
        return any(n in TIMES for n in self.fields)

    def render(self, lo: int, hi: int, tz: tzinfo, values: Mapping[str, object],
               escape: Callable[[str], str]) -> str:
        times: dict[str, str] = {}
        for edge, t in (("start", lo), ("end", hi)):
            for suffix, text in instant_text(t, tz).items():
                times[edge + suffix] = text

        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in times:
                return times[name]
            v = values[name]
            return "NULL" if v is None else escape(str(v)) if isinstance(v, str) else str(v)
        return _PLACEHOLDER.sub(one, self.text)
