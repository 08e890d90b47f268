"""Review periods: 2026-W48 (ISO week), 2026-11 (month), 2026-Q4 (quarter), 2026-H2 (half year).

A period is a closed range of local calendar dates. Scheduled runs review the
last complete period before the day they run; an operator may name any period.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from taskforce.errors import DomainError


class ReviewKind(StrEnum):
    weekly = "weekly"  # 周调度
    monthly = "monthly"  # 月度复盘
    quarterly = "quarterly"  # 季度优化 + 运行白皮书
    semiannual = "semiannual"  # 半年绩效与风险审计


_PATTERNS = {
    ReviewKind.weekly: (re.compile(r"^(\d{4})-W(\d{2})$"), "YYYY-Www, e.g. 2026-W40"),
    ReviewKind.monthly: (re.compile(r"^(\d{4})-(\d{2})$"), "YYYY-MM, e.g. 2026-10"),
    ReviewKind.quarterly: (re.compile(r"^(\d{4})-Q([1-4])$"), "YYYY-Qn, e.g. 2026-Q3"),
    ReviewKind.semiannual: (re.compile(r"^(\d{4})-H([12])$"), "YYYY-Hn, e.g. 2026-H1"),
}


@dataclass(frozen=True, order=True)
class Period:
    kind: ReviewKind
    label: str
    first_day: dt.date
    last_day: dt.date  # inclusive

    def starts_at(self, timezone: str) -> dt.datetime:
        """The first instant of the period (local midnight), as UTC."""
        return _midnight(self.first_day, timezone)

    def ends_at(self, timezone: str) -> dt.datetime:
        """The instant after the period (local midnight after the last day), as UTC."""
        return _midnight(self.last_day + dt.timedelta(days=1), timezone)

    def previous(self) -> Period:
        return period_containing(self.kind, self.first_day - dt.timedelta(days=1))

    def history(self, count: int, since: dt.date | None = None) -> list[Period]:
        """The last `count` periods, oldest first, ending with this one; with `since`, none
        that ended before that day (this one is always kept)."""
        out = [self]
        while len(out) < count:
            earlier = out[-1].previous()
            if since is not None and earlier.last_day < since:
                break
            out.append(earlier)
        return out[::-1]

    def iso_weeks(self) -> list[str]:
        """The ISO weeks (2026-W48) that have a day in the period, for week-keyed records."""
        weeks, day = [], self.first_day
        while day <= self.last_day:
            year, week, _ = day.isocalendar()
            label = f"{year}-W{week:02d}"
            if label not in weeks:
                weeks.append(label)
            day += dt.timedelta(days=1)
        return weeks


def _midnight(day: dt.date, timezone: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), ZoneInfo(timezone)).astimezone(dt.UTC)


def share_of_year(day: dt.date) -> float:
    """How much of `day`'s calendar year has passed at its end (31 December: 1.0): the time
    progress (时间进度) budget execution is read against."""
    first = dt.date(day.year, 1, 1)
    return ((day - first).days + 1) / (dt.date(day.year + 1, 1, 1) - first).days


def parse_period(kind: ReviewKind | str, label: str) -> Period:
    """The period a label names; a bad label is an error naming the field and the format."""
    kind = ReviewKind(kind)
    pattern, shape = _PATTERNS[kind]
    match = pattern.match(label.strip())
    if match is None:
        raise DomainError(f"{label!r} is not a {kind.value} period", field="period", allowed=shape)
    year, n = int(match.group(1)), int(match.group(2))
    try:
        if kind is ReviewKind.weekly:
            first = dt.date.fromisocalendar(year, n, 1)
            last = first + dt.timedelta(days=6)
        elif kind is ReviewKind.monthly:
            first = dt.date(year, n, 1)
            last = _month_end(year, n)
        elif kind is ReviewKind.quarterly:
            first = dt.date(year, 3 * n - 2, 1)
            last = _month_end(year, 3 * n)
        else:
            first = dt.date(year, 6 * n - 5, 1)
            last = _month_end(year, 6 * n)
    except ValueError as exc:
        raise DomainError(f"{label!r}: {exc}", field="period", allowed=shape) from exc
    return Period(kind, label.strip(), first, last)


def period_containing(kind: ReviewKind | str, day: dt.date) -> Period:
    kind = ReviewKind(kind)
    if kind is ReviewKind.weekly:
        year, week, _ = day.isocalendar()
        return parse_period(kind, f"{year}-W{week:02d}")
    if kind is ReviewKind.monthly:
        return parse_period(kind, f"{day.year}-{day.month:02d}")
    if kind is ReviewKind.quarterly:
        return parse_period(kind, f"{day.year}-Q{(day.month - 1) // 3 + 1}")
    return parse_period(kind, f"{day.year}-H{(day.month - 1) // 6 + 1}")


def last_complete_period(kind: ReviewKind | str, today: dt.date) -> Period:
    """What a scheduled run reviews: the period that ended before `today`."""
    return period_containing(kind, today).previous()


def _month_end(year: int, month: int) -> dt.date:
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)
