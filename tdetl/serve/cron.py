"""Cron schedules for tasks (``schedule: "0 2 * * *"``: a nightly backup): the five standard fields
(minute, hour, day of month, month, day of week) with ``*``, lists, ranges and steps, in UTC."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ..errors import ConfigError

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 6))


class Cron:
    def __init__(self, text: str) -> None:
        parts = text.split()
        if len(parts) != 5:
            raise ConfigError(f"task: schedule {text!r}: expected five fields: minute hour day-of-month month"
                              " day-of-week")
        self.text = text
        self.sets = [_field(p, name, lo, hi, text) for p, (name, lo, hi) in zip(parts, _FIELDS)]
        self.any_day = (parts[2] == "*", parts[4] == "*")

    def next_after(self, t: datetime) -> datetime:
        """The first whole minute after ``t`` that the schedule names."""
        t = t.astimezone(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(366 * 24 * 60):
            minutes, hours, days, months, weekdays = self.sets
            day_ok = t.day in days
            wday_ok = (t.weekday() + 1) % 7 in weekdays  # cron: 0 is Sunday
            if not self.any_day[0] and not self.any_day[1]:
                dated = day_ok or wday_ok  # both given: either matches (as cron does)
            else:
                dated = day_ok and wday_ok
            if t.month in months and dated and t.hour in hours and t.minute in minutes:
                return t
            t += timedelta(minutes=1)
        raise ConfigError(f"task: schedule {self.text!r} never fires")


def _field(text: str, name: str, lo: int, hi: int, whole: str) -> set[int]:
    out: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                first, last = lo, hi
            elif "-" in base:
                a, b = base.split("-", 1)
                first, last = int(a), int(b)
            else:
                first = int(base)
                last = hi if step_text else first
        except ValueError:
            raise ConfigError(f"task: schedule {whole!r}: {name} {item!r} is not a number, range or step") from None
        if step < 1 or first < lo or last > hi or first > last:
            raise ConfigError(f"task: schedule {whole!r}: {name} {item!r} is outside {lo}-{hi}")
        out.update(range(first, last + 1, step))
    return out
