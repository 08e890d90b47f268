import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskforce.errors import DomainError
from taskforce.reviews.periods import (
    ReviewKind,
    last_complete_period,
    parse_period,
    period_containing,
)


@pytest.mark.parametrize(
    ("kind", "label", "first", "last"),
    [
        ("weekly", "2026-W48", dt.date(2026, 11, 23), dt.date(2026, 11, 29)),
        ("weekly", "2026-W53", dt.date(2026, 12, 28), dt.date(2027, 1, 3)),  # 2026 has 53 weeks
        ("monthly", "2026-02", dt.date(2026, 2, 1), dt.date(2026, 2, 28)),
        ("monthly", "2028-02", dt.date(2028, 2, 1), dt.date(2028, 2, 29)),
        ("monthly", "2026-12", dt.date(2026, 12, 1), dt.date(2026, 12, 31)),
        ("quarterly", "2026-Q4", dt.date(2026, 10, 1), dt.date(2026, 12, 31)),
        ("semiannual", "2026-H1", dt.date(2026, 1, 1), dt.date(2026, 6, 30)),
    ],
)
def test_labels(kind, label, first, last):
    p = parse_period(kind, label)
    assert (p.first_day, p.last_day) == (first, last)


@pytest.mark.parametrize(
    ("kind", "label"),
    [
        ("monthly", "2026-13"),
        ("monthly", "2026-Q1"),
        ("weekly", "2025-W53"),
        ("quarterly", "2026-Q5"),
    ],
)
def test_bad_labels_name_the_field_and_the_format(kind, label):
    with pytest.raises(DomainError) as err:
        parse_period(kind, label)
    assert err.value.field == "period"
    assert "e.g." in str(err.value)


def test_period_instants_are_shanghai_midnights():
    p = parse_period("monthly", "2026-11")
    assert p.starts_at("Asia/Shanghai") == dt.datetime(2026, 10, 31, 16, tzinfo=dt.UTC)
    assert p.ends_at("Asia/Shanghai") == dt.datetime(2026, 11, 30, 16, tzinfo=dt.UTC)


def test_scheduled_runs_review_the_last_complete_period():
    assert last_complete_period("monthly", dt.date(2026, 12, 1)).label == "2026-11"
    assert last_complete_period("quarterly", dt.date(2027, 1, 1)).label == "2026-Q4"
    assert last_complete_period("semiannual", dt.date(2026, 7, 1)).label == "2026-H1"
    assert last_complete_period("weekly", dt.date(2026, 11, 30)).label == "2026-W48"


@given(st.sampled_from(list(ReviewKind)), st.dates(dt.date(2001, 1, 1), dt.date(2098, 12, 31)))
def test_periods_tile_the_calendar(kind, day):
    p = period_containing(kind, day)
    assert p.first_day <= day <= p.last_day
    assert p.previous().last_day == p.first_day - dt.timedelta(days=1)
    assert parse_period(kind, p.label) == p


def test_the_trend_starts_with_the_programme():
    """A quarterly trend of six in 2026-Q3 showed three empty columns before 2026-01-01."""
    q3 = parse_period("quarterly", "2026-Q3")
    start = dt.date(2026, 1, 1)
    assert [p.label for p in q3.history(6, since=start)] == ["2026-Q1", "2026-Q2", "2026-Q3"]
    assert q3.history(6)[0].label == "2025-Q2"
    # The first month of the programme is in; the one ending the day before it is not.
    feb = parse_period("monthly", "2026-02")
    assert [p.label for p in feb.history(6, since=start)] == ["2026-01", "2026-02"]
    assert [p.label for p in feb.history(6, since=dt.date(2026, 1, 31))] == ["2026-01", "2026-02"]
    assert [p.label for p in feb.history(6, since=dt.date(2026, 2, 1))] == ["2026-02"]
