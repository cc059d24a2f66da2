"""Cron schedules for tasks (``schedule: "0 2 * * *"``: a nightly backup), read by cronsim (a small,
well-kept evaluator: names such as ``MON`` and ``JAN``, ``7`` for Sunday, ``L`` and ``#``) plus the
usual nicknames (``@daily``), in the task's time zone (``timezone``, an IANA name; default UTC):
nightly backups are local-time jobs, and a zone's daylight-saving shifts are cronsim's to handle."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from ..errors import ConfigError, shown

NICKNAMES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
             "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}


class Cron:
    def __init__(self, text: str, zone: str | None = None) -> None:
        self.text = text
        self.expr = NICKNAMES.get(text.strip().lower(), text)
        try:
            self.zone = ZoneInfo(zone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"task: timezone {shown(zone, 60)} is not an IANA time zone such as Asia/Shanghai"
                              " or UTC") from None
        try:
            next(CronSim(self.expr, datetime.now(self.zone)))
        except (CronSimError, StopIteration) as e:
            what = str(e) or "never fires"
            raise ConfigError(f"task: schedule {shown(text, 100)}: {what[0].lower() + what[1:]} (five fields: minute"
                              " hour day-of-month month day-of-week, or @daily, @hourly, …)") from None

    def next_after(self, t: datetime) -> datetime:
        """The first time after ``t`` that the schedule names, in the task's zone."""
        return next(CronSim(self.expr, t.astimezone(self.zone)))
