"""The quarterly drill on a working day (flows/drill.py: drill_day)."""

import datetime as dt

import pytest

from flows.drill import _first_day_of, drill_day
from taskforce.calendar import WorkCalendar
from taskforce.policy import load_policy

D = dt.date


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        # 15 February 2026 is the first day of the Spring Festival holiday (15-23 February):
        # the drill waits for the first working day after it.
        (D(2026, 2, 16), D(2026, 2, 24)),
        (D(2026, 5, 15), D(2026, 5, 15)),  # a Friday: that day
        (D(2026, 8, 15), D(2026, 8, 17)),  # a Saturday: the Monday
        (D(2026, 11, 20), D(2026, 11, 16)),  # a Sunday the 15th: the Monday
    ],
)
def test_the_drill_day_is_the_first_working_day_from_the_15th(today, expected):
    assert drill_day(today, 15, WorkCalendar()) == expected


def test_the_schedule_fires_on_every_day_a_drill_day_can_fall_on():
    """The cron's day range starts at the drill's first day and reaches past any holiday."""
    cron = load_policy().reviews.quarterly_drill
    first = _first_day_of(cron)
    assert first == 15
    last = int(cron.split()[2].split("-")[1])
    calendar = WorkCalendar()
    for month in (2, 5, 8, 11):
        assert first <= drill_day(D(2026, month, 1), first, calendar).day <= last
