"""Chinese working days (SPEC §1, §2.3): statutory holidays off, make-up days (调休) on.

Data comes from the chinese-calendar package; config/taskforce.yaml can add a
year's official holidays and make-up days as soon as they are published, and
that data wins. For a date nobody has data for, Monday–Friday is assumed, a
warning is logged once per year, and the result says so, so that callers can
record the fallback on the decision trail.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import chinese_calendar

from taskforce.policy.schema import CalendarPolicy

log = logging.getLogger(__name__)
_warned_years: set[int] = set()


@dataclass(frozen=True)
class WorkdayAnswer:
    is_workday: bool
    fallback_used: bool  # True when no holiday data covered this date


@dataclass(frozen=True)
class Deadline:
    due: dt.date
    fallback_used: bool


class WorkCalendar:
    def __init__(self, policy: CalendarPolicy | None = None) -> None:
        policy = policy or CalendarPolicy()
        self._holidays = frozenset(policy.extra_holidays)
        self._workdays = frozenset(policy.extra_workdays)
        self._configured_years = {d.year for d in self._holidays | self._workdays}

    def check(self, day: dt.date) -> WorkdayAnswer:
        if day in self._holidays:
            return WorkdayAnswer(False, False)
        if day in self._workdays:
            return WorkdayAnswer(True, False)
        try:
            return WorkdayAnswer(chinese_calendar.is_workday(day), False)
        except NotImplementedError:
            pass
        if day.year not in self._configured_years and day.year not in _warned_years:
            _warned_years.add(day.year)
            log.warning(
                "no Chinese holiday data for %s: assuming Monday-Friday; add the year's "
                "official holidays to config/taskforce.yaml calendar.extra_holidays/extra_workdays",
                day.year,
            )
        return WorkdayAnswer(day.weekday() < 5, day.year not in self._configured_years)

    def has_data_for(self, year: int) -> bool:
        """Whether the holidays of `year` are known (the package's or config's), not assumed."""
        if year in self._configured_years:
            return True
        try:
            chinese_calendar.is_workday(dt.date(year, 1, 1))
        except NotImplementedError:
            return False
        return True

    def is_workday(self, day: dt.date) -> bool:
        return self.check(day).is_workday

    def add_working_days(self, start: dt.date, days: int) -> Deadline:
        """The date `days` working days after `start`; the start day itself is not counted."""
        if days < 0:
            raise ValueError("days must be >= 0")
        day, counted, fallback = start, 0, False
        while counted < days:
            day += dt.timedelta(days=1)
            answer = self.check(day)
            fallback |= answer.fallback_used
            counted += answer.is_workday
        return Deadline(day, fallback)

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days after `start` up to and including `end` (0 if end <= start)."""
        count, day = 0, start
        while day < end:
            day += dt.timedelta(days=1)
            count += self.check(day).is_workday
        return count
