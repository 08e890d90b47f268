import datetime as dt
import logging

import pytest

from taskforce.calendar import WorkCalendar
from taskforce.policy.schema import CalendarPolicy

D = dt.date


@pytest.fixture
def cal():
    return WorkCalendar()


def test_start_day_not_counted_monday_plus_five_is_next_monday(cal):
    # SPEC §1: 开始的当日不计入 — decided Monday, due the following Monday.
    assert cal.add_working_days(D(2026, 3, 9), 5).due == D(2026, 3, 16)


def test_friday_decision_skips_weekend(cal):
    assert cal.add_working_days(D(2026, 3, 13), 1).due == D(2026, 3, 16)


def test_last_working_day_before_national_day_counts_makeup_saturday(cal):
    # 2026-09-30 (Wed) is the last working day before the National Day holiday
    # (10-01..10-07); Saturday 10-10 is a make-up working day (调休).
    assert cal.is_workday(D(2026, 9, 30))
    assert not cal.is_workday(D(2026, 10, 1))
    assert cal.is_workday(D(2026, 10, 10))
    deadline = cal.add_working_days(D(2026, 9, 30), 5)
    assert deadline.due == D(2026, 10, 13)
    assert not deadline.fallback_used


def test_one_working_day_after_last_day_before_holiday_jumps_the_holiday(cal):
    assert cal.add_working_days(D(2026, 9, 30), 1).due == D(2026, 10, 8)


def test_zero_days_is_the_start_day(cal):
    assert cal.add_working_days(D(2026, 3, 9), 0).due == D(2026, 3, 9)


def test_negative_days_refused(cal):
    with pytest.raises(ValueError):
        cal.add_working_days(D(2026, 3, 9), -1)


def test_unknown_year_falls_back_to_weekdays_and_says_so(cal, caplog):
    caplog.set_level(logging.WARNING)
    deadline = cal.add_working_days(D(2099, 3, 2), 5)  # a Monday
    assert deadline.due == D(2099, 3, 9)
    assert deadline.fallback_used
    assert cal.check(D(2099, 3, 7)).is_workday is False  # Saturday


def test_unknown_year_warns_once(caplog):
    caplog.set_level(logging.WARNING)
    cal = WorkCalendar()
    cal.add_working_days(D(2098, 3, 2), 10)
    assert sum("no Chinese holiday data for 2098" in r.message for r in caplog.records) == 1


def test_configured_holidays_win_over_the_fallback():
    cal = WorkCalendar(
        CalendarPolicy(extra_holidays=[D(2097, 2, 11)], extra_workdays=[D(2097, 2, 16)])
    )
    assert not cal.is_workday(D(2097, 2, 11))  # a Monday made a holiday
    assert cal.is_workday(D(2097, 2, 16))  # a Saturday made a working day
    answer = cal.check(D(2097, 2, 12))
    assert answer.is_workday and not answer.fallback_used  # the year is configured: no fallback


def test_configured_data_wins_over_the_package():
    cal = WorkCalendar(CalendarPolicy(extra_holidays=[D(2026, 3, 10)]))
    assert cal.add_working_days(D(2026, 3, 9), 1).due == D(2026, 3, 11)


def test_working_days_between(cal):
    assert cal.working_days_between(D(2026, 3, 9), D(2026, 3, 16)) == 5
    assert cal.working_days_between(D(2026, 3, 16), D(2026, 3, 9)) == 0
