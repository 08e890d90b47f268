"""A day-based deadline expires at the midnight after its day; operators read the day."""

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from taskforce.clock import end_of_day, last_day

ZONES = ["Asia/Shanghai", "UTC", "America/New_York", "Pacific/Kiritimati", "Europe/Dublin"]


@given(
    st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 30)), st.sampled_from(ZONES)
)
def test_the_day_a_deadline_falls_due_is_the_day_it_was_set_for(day, zone):
    assert last_day(end_of_day(day, zone), zone) == day


def test_a_deadline_one_microsecond_later_is_the_next_days():
    expires = end_of_day(dt.date(2026, 11, 10), "Asia/Shanghai")
    assert expires == dt.datetime(2026, 11, 10, 16, tzinfo=dt.UTC)
    assert last_day(expires, "Asia/Shanghai") == dt.date(2026, 11, 10)
    assert last_day(expires + dt.timedelta(microseconds=1), "Asia/Shanghai") == dt.date(
        2026, 11, 11
    )
