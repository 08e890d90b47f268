"""Time is injected (ARCHITECTURE.md rule 5): the core takes a Clock, tests move it."""

from __future__ import annotations

import datetime as dt
from typing import Protocol
from zoneinfo import ZoneInfo

UTC = dt.UTC


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current instant, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)


class ManualClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, **delta: float) -> dt.datetime:
        self._now += dt.timedelta(**delta)
        return self._now

    def set(self, when: dt.datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("ManualClock.set needs a timezone-aware datetime")
        self._now = when.astimezone(UTC)


def local_date(instant: dt.datetime, timezone: str) -> dt.date:
    """The calendar date of an instant in the task force's timezone."""
    return instant.astimezone(ZoneInfo(timezone)).date()


def local_minute(instant: dt.datetime, timezone: str) -> str:
    """An instant as the office reads it in a message: "2026-06-04 09:00", local time."""
    return instant.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def as_utc(instant: dt.datetime) -> dt.datetime:
    """A stored instant, aware: SQLite hands datetimes back naive (they are stored in UTC)."""
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def last_day(deadline: dt.datetime, timezone: str) -> dt.date:
    """The day a day-based deadline (`end_of_day`) falls due: the last day to act, which is
    what an operator reads ("due by 10 Nov"), not the midnight after it."""
    return local_date(deadline - dt.timedelta(microseconds=1), timezone)


def end_of_day(day: dt.date, timezone: str) -> dt.datetime:
    """The instant a day-based deadline expires: midnight after `day`, local time, as UTC."""
    nxt = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), ZoneInfo(timezone))
    return nxt.astimezone(UTC)
