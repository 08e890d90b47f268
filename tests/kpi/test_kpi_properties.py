"""The vectorised KPIs agree with a plain row-by-row reading of their definitions, for any data."""

from __future__ import annotations

import datetime as dt
import statistics

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskforce.kpi.compute import compute_kpis
from taskforce.kpi.frames import Frames
from taskforce.policy import load_policy
from taskforce.reviews.periods import parse_period

POLICY = load_policy()
PERIOD = parse_period("monthly", "2026-11")
START, END = PERIOD.starts_at(POLICY.timezone), PERIOD.ends_at(POLICY.timezone)
NOW = dt.datetime(2026, 12, 1, 1, tzinfo=dt.UTC)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))

# Instants around November at hour resolution, so the period boundaries are hit often.
instants = st.integers(min_value=-24 * 40, max_value=24 * 70).map(
    lambda h: dt.datetime(2026, 10, 25, tzinfo=dt.UTC) + dt.timedelta(hours=h)
)
days = st.integers(min_value=-10, max_value=45).map(
    lambda d: dt.date(2026, 11, 1) + dt.timedelta(days=d)
)


@st.composite
def issue_rows(draw):
    reported = draw(instants)
    closed = draw(st.one_of(st.none(), instants.filter(lambda c: c >= reported)))
    return {"reported_at": reported, "closed_at": closed}


@st.composite
def item_rows(draw):
    start = draw(days)
    due = start + dt.timedelta(days=draw(st.integers(0, 30)))
    completed = draw(st.one_of(st.none(), instants))
    return {"start_date": start, "due_date": due, "completed_at": completed}


def _frames(issues: list[dict], items: list[dict]) -> Frames:
    empty = lambda **cols: pd.DataFrame({k: pd.Series([], dtype=v) for k, v in cols.items()})  # noqa: E731
    iss = pd.DataFrame(
        {
            "id": range(len(issues)),
            "stage": ["closed" if r["closed_at"] else "executing" for r in issues],
            "reported_at": pd.to_datetime([r["reported_at"] for r in issues], utc=True),
            "first_response_at": pd.to_datetime([None] * len(issues), utc=True),
            "closed_at": pd.to_datetime([r["closed_at"] for r in issues], utc=True),
            "stage_due_at": pd.to_datetime([None] * len(issues), utc=True),
        }
    )
    tasks = pd.DataFrame(
        {
            "start_date": pd.to_datetime([r["start_date"] for r in items]),
            "due_date": pd.to_datetime([r["due_date"] for r in items]),
            "done": [r["completed_at"] is not None for r in items],
            "completed_at": pd.to_datetime([r["completed_at"] for r in items], utc=True),
            "percent": [0] * len(items),
        }
    )
    utc = "datetime64[ns, UTC]"
    return Frames(
        issues=iss,
        tasks=tasks,
        evaluations=empty(satisfaction="int64", evaluated_at=utc),
        milestones=empty(kind=object, due_date="datetime64[ns]", achieved=bool, achieved_on="datetime64[ns]"),
        lines=empty(id="int64", fiscal_year="int64", amount_fen="int64", status=object, is_reserve=bool, approved_at=utc),
        adjustments=empty(line_id="int64", delta_fen="int64", decided_at=utc),
        ledger=empty(fiscal_year="int64", kind=object, entry_date="datetime64[ns]", amount_fen="int64", entries="int64"),
        findings=empty(severity=object, first_seen_week=object, resolved=bool, resolved_week=object),
        warnings=empty(colour=object, raised_at=utc, deadline_at=utc, handled_at=utc),
        emergencies=empty(
            level=object,
            is_drill=bool,
            opened_at=utc,
            acknowledged_at=utc,
            resolved_at=utc,
            deadlines=object,
        ),
        members=empty(full_time=bool, training_hours="int64"),
    )  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(issues=st.lists(issue_rows(), max_size=12), items=st.lists(item_rows(), max_size=12))
def test_vectorised_kpis_match_their_definitions(issues, items):
    k = compute_kpis(_frames(issues, items), PERIOD, POLICY, NOW, snapshot=False).kpis

    in_scope = [
        r
        for r in issues
        if r["reported_at"] < END and (r["closed_at"] is None or r["closed_at"] >= START)
    ]
    closed_in = [r for r in issues if r["closed_at"] is not None and START <= r["closed_at"] < END]
    solved = [r for r in in_scope if r in closed_in]
    assert k["resolution_rate"].value == (
        pytest.approx(len(solved) / len(in_scope)) if in_scope else None
    )
    cycles = [(r["closed_at"] - r["reported_at"]).total_seconds() / 86400 for r in closed_in]
    if cycles:
        assert k["cycle_time_mean_days"].value == pytest.approx(statistics.mean(cycles))
        assert k["cycle_time_median_days"].value == pytest.approx(statistics.median(cycles))
    else:
        assert k["cycle_time_mean_days"].value is None

    local = lambda t: t.astimezone(SHANGHAI).date()  # noqa: E731
    due_in = [r for r in items if PERIOD.first_day <= r["due_date"] <= PERIOD.last_day]
    on_time = [
        r
        for r in due_in
        if r["completed_at"] is not None and local(r["completed_at"]) <= r["due_date"]
    ]
    assert k["on_time_rate"].value == (
        pytest.approx(len(on_time) / len(due_in)) if due_in else None
    )

    done_in = [
        r for r in items if r["completed_at"] is not None and START <= r["completed_at"] < END
    ]
    # 工期 counts both ends: the start day and the last day.
    actual = sum(max(1, (local(r["completed_at"]) - r["start_date"]).days + 1) for r in done_in)
    planned = sum(max(1, (r["due_date"] - r["start_date"]).days + 1) for r in done_in)
    assert k["duration_ratio"].value == (pytest.approx(actual / planned) if done_in else None)
    for kpi in (k["resolution_rate"], k["on_time_rate"]):
        assert kpi.value is None or 0 <= kpi.value <= 1


@pytest.mark.parametrize(
    ("start", "due", "done_local", "ratio"),
    [
        ("2026-11-10", "2026-11-10", "2026-11-10 18:00", 1.0),  # within its one day: 1 / 1
        ("2026-11-10", "2026-11-10", "2026-11-11 09:00", 2.0),  # a day late: 2 / 1
        ("2026-11-10", "2026-11-14", "2026-11-14 23:59", 1.0),  # on its last day: 5 / 5
        ("2026-11-10", "2026-11-14", "2026-11-08 10:00", 0.2),  # before its start: 1 / 5
    ],
)
def test_the_duration_ratio_counts_both_ends_of_a_work_period(start, due, done_local, ratio):
    """工期 counts the start day and the last day. An item planned and done within one day
    read 0 days of 0 planned: a ratio of 0.00, "met" whatever the baseline."""
    done = dt.datetime.fromisoformat(done_local).replace(tzinfo=SHANGHAI)
    item = {
        "start_date": dt.date.fromisoformat(start),
        "due_date": dt.date.fromisoformat(due),
        "completed_at": done,
    }
    k = compute_kpis(_frames([], [item]), PERIOD, POLICY, NOW, snapshot=False).kpis
    assert k["duration_ratio"].value == pytest.approx(ratio)
    assert k["duration_ratio"].basis == 1
