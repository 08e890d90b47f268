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


def test_config_check_warns_of_a_year_whose_holidays_are_unknown(policy):
    """chinese-calendar 1.11.0 knows years up to 2026: in November 2026 deadlines reach into
    2027, whose New Year's Day was counted as a working day while config-check said OK.
    (Years far ahead here, so that a package that learns 2027 does not break the test.)"""
    from taskforce.cli import calendar_warnings
    from taskforce.clock import ManualClock
    from taskforce.context import Context

    november = ManualClock(dt.datetime(2097, 11, 29, 2, tzinfo=dt.UTC))
    warnings = calendar_warnings(Context(policy=policy, clock=november))
    assert [w.split(":")[0] for w in warnings] == [
        "no Chinese holiday data for 2097",
        "no Chinese holiday data for 2098",
    ]
    assert all("calendar.extra_holidays" in w for w in warnings)
    known = policy.model_copy(
        update={"calendar": CalendarPolicy(extra_holidays=[dt.date(2098, 1, 1)])}
    )
    (warning,) = calendar_warnings(Context(policy=known, clock=november))
    assert warning.startswith("no Chinese holiday data for 2097:")
    this_year = ManualClock(dt.datetime(2025, 11, 29, 2, tzinfo=dt.UTC))
    assert calendar_warnings(Context(policy=policy, clock=this_year)) == []  # 2025, 2026 known
    assert WorkCalendar().has_data_for(2026) and not WorkCalendar().has_data_for(2097)
    assert WorkCalendar(CalendarPolicy(extra_workdays=[dt.date(2097, 2, 6)])).has_data_for(2097)


def test_config_check_prints_each_calendar_warning_on_one_line():
    """Off a terminal (a script, CI's log) rich wrapped the warning at 80 columns, so a
    `grep warning:` found half of it (a re-trial of the operator trial)."""
    from typer.testing import CliRunner

    from taskforce.cli import app
    from taskforce.clock import ManualClock
    from taskforce.context import use_clock

    previous = use_clock(ManualClock(dt.datetime(2097, 11, 29, 2, tzinfo=dt.UTC)))
    try:
        result = CliRunner().invoke(app, ["config-check"], env={"COLUMNS": "80"})
    finally:
        use_clock(previous)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert [w.split(":")[1].strip() for w in warnings] == [
        "no Chinese holiday data for 2097",
        "no Chinese holiday data for 2098",
    ]
    assert all(w.endswith("once they are published") for w in warnings), result.output
