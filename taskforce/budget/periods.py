"""The periods the audits cover: ISO weeks (2026-W48) and half-years (2026-H1)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskforce.budget.models import FiscalYear
from taskforce.errors import DomainError

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_HALF = re.compile(r"^(\d{4})-H([12])$")


@dataclass(frozen=True)
class Period:
    label: str  # 2026-W48 or 2026-H1
    start: dt.date
    end: dt.date  # inclusive

    @property
    def fiscal_years(self) -> list[int]:
        return sorted({self.start.year, self.end.year})


def iso_week(label: str) -> Period:
    match = _WEEK.match(label or "")
    if not match:
        raise DomainError(
            f"{label!r} is not an ISO week", field="week", allowed="YYYY-Www, e.g. 2026-W40"
        )
    year, week = int(match[1]), int(match[2])
    try:
        monday = dt.date.fromisocalendar(year, week, 1)
    except ValueError as exc:
        raise DomainError(
            f"{year} has no ISO week {week}", field="week", allowed="an existing ISO week"
        ) from exc
    return Period(label, monday, monday + dt.timedelta(days=6))


def week_of(day: dt.date) -> Period:
    year, week, _ = day.isocalendar()
    return iso_week(f"{year}-W{week:02d}")


def last_complete_week(today: dt.date) -> Period:
    return week_of(today - dt.timedelta(days=7))


def half_year(label: str) -> Period:
    match = _HALF.match(label or "")
    if not match:
        raise DomainError(
            f"{label!r} is not a half-year", field="half", allowed="YYYY-H1 or YYYY-H2"
        )
    year, half = int(match[1]), int(match[2])
    if half == 1:
        return Period(label, dt.date(year, 1, 1), dt.date(year, 6, 30))
    return Period(label, dt.date(year, 7, 1), dt.date(year, 12, 31))


def last_complete_half(today: dt.date) -> Period:
    if today.month <= 6:
        return half_year(f"{today.year - 1}-H2")
    return half_year(f"{today.year}-H1")


def started(period: Period, today: dt.date, field: str) -> Period:
    """The period, refused if it has not begun: an audit of a week or half to come finds
    nothing, yet it would be recorded, published and announced (a mistyped year)."""
    if period.start > today:
        raise DomainError(
            f"{period.label} has not begun (it starts on {period.start.isoformat()})",
            field=field,
            allowed="a period that has begun; the default is the last complete one",
        )
    return period


def within_recorded_years(session: Session, period: Period, field: str) -> Period:
    """The period, refused if it ends before the first recorded fiscal year: `--week
    1999-W01` audited a ledger that cannot hold a payment of 1999, and recorded, published
    and announced the empty audit. A period after the last recorded year is audited: the
    scheduled audit of a new year's first weeks runs before the office records the year.
    With no year recorded yet (a new installation) every period is."""
    years = session.scalars(select(FiscalYear.year).order_by(FiscalYear.year)).all()
    if years and period.end.year < years[0]:
        raise DomainError(
            f"{period.label} ends before the first recorded fiscal year, {years[0]}",
            field=field,
            allowed=f"a period from {years[0]} on (recorded years: {', '.join(map(str, years))}); "
            "`taskforce budget set-year` records an earlier one",
        )
    return period
