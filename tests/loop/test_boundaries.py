"""Boundary tests of the closed loop's day-based rules: each rule checked at its exact
boundary and one step past it (SPEC §1 counting conventions, §2).

Numbers come from the policy object (config/taskforce.yaml), never from SPEC's text. The
expected days are counted here day by day with the calendar's `is_workday` (SPEC §1: the day
a period starts from is not counted), not with the `add_working_days` under test.
"""

from __future__ import annotations

import datetime as dt
import difflib
from fractions import Fraction
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from taskforce.clock import ManualClock
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.loop.colours import colours_frame, next_red_step_days, next_red_step_on
from taskforce.loop.models import Colour, Issue, IssueReport, Plan, Stage
from taskforce.loop.sweep import _take_red_steps, dispatch_sweep
from taskforce.notify.models import OutboxMessage
from taskforce.trail.models import TrailEntry
from tests.loop.helpers import Loop

ONE_SECOND = dt.timedelta(seconds=1)


@pytest.fixture
def loop(engine, policy, clock):
    return Loop(engine, Context(policy=policy, clock=clock))


def _local(ctx: Context, day: dt.date, hour=0, minute=0, second=0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute, second), ZoneInfo(ctx.policy.timezone))


def _nth_working_day_after(ctx: Context, start: dt.date, n: int) -> dt.date:
    """The n-th working day after `start`, the start day not counted (SPEC §1)."""
    day, counted = start, 0
    while counted < n:
        day += dt.timedelta(days=1)
        counted += ctx.calendar.is_workday(day)
    return day


def _next_working_day(ctx: Context, day: dt.date) -> dt.date:
    return _nth_working_day_after(ctx, day, 1)


def _count(engine, model, *where) -> int:
    with unit_of_work(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def _sweep(loop: Loop):
    with unit_of_work(loop.engine) as s:
        return dispatch_sweep(s, loop.ctx)


def _overdue_notices(engine) -> tuple[int, int]:
    """(stage.overdue trail entries, stage_overdue outbox messages)."""
    return (
        _count(engine, TrailEntry, TrailEntry.action == "stage.overdue"),
        _count(engine, OutboxMessage, OutboxMessage.event_kind == "stage_overdue"),
    )


def _assert_overdue_only_after_last_working_day(loop, clock, number, due, stage, what):
    """The sweep on the last second of `due` warns of nothing; on the first second of the
    next working day it warns once of `stage` (`what`)."""
    ctx, engine = loop.ctx, loop.engine
    next_day = due + dt.timedelta(days=1)
    # The step past the boundary is the next calendar day, itself a working day.
    assert _next_working_day(ctx, due) == next_day
    with unit_of_work(engine) as s:
        issue = s.scalar(select(Issue).where(Issue.number == number))
        assert issue.stage == stage
        assert issue.stage_due_at == ctx.end_of(due)

    clock.set(_local(ctx, due, 23, 59, 59))  # the last working day, its last second
    on_due_day = _sweep(loop)
    assert on_due_day.new_overdue == 0
    assert on_due_day.overdue_stages == []
    assert _overdue_notices(engine) == (0, 0)

    clock.set(_local(ctx, next_day, 0, 0, 1))  # the next working day, its first second
    next_working_day = _sweep(loop)
    assert next_working_day.new_overdue == 1
    assert [(o["issue"], o["stage"], o["what"]) for o in next_working_day.overdue_stages] == [
        (number, stage.value, what)
    ]
    trail, outbox = _overdue_notices(engine)
    assert trail == 1 and outbox >= 1


def test_coordination_overdue_warned_the_working_day_after_the_deadline_not_on_it(loop, clock):
    """SPEC §1 (a period of working days does not count its first day), §2.2 and §3 weekly
    dispatch "overdue stages": coordination is due within
    loop.coordination_deadline_working_days working days of the report. The sweep gives no
    stage-overdue warning on the last working day (up to its last second) and gives one on
    the next working day. Reported on Thursday 12 March 2026, the count runs over a weekend."""
    ctx = loop.ctx
    reported_on = dt.date(2026, 3, 12)  # a Thursday
    clock.set(_local(ctx, reported_on, 9))
    number = loop.report().issue_number
    n = ctx.policy.loop.coordination_deadline_working_days
    due = _nth_working_day_after(ctx, reported_on, n)
    assert (due - reported_on).days > n  # non-working days lie inside the count
    _assert_overdue_only_after_last_working_day(
        loop, clock, number, due, Stage.reported, "coordination not held"
    )


def test_evaluation_overdue_warned_the_working_day_after_the_deadline_not_on_it(loop, clock):
    """SPEC §1, §2.5 and §3 weekly dispatch "overdue stages": the evaluation is due within
    loop.evaluation_deadline_working_days working days of the day the last action item was
    done (that day not counted). No stage-overdue warning on the last working day, one on
    the next working day."""
    ctx = loop.ctx
    number = loop.report().issue_number  # Monday 9 March 2026 (the clock fixture)
    loop.coordinate(number)
    loop.plan(number, items=1, due_in=20)
    done_on = dt.date(2026, 3, 12)  # a Thursday
    clock.set(_local(ctx, done_on, 10))
    (item,) = loop.items(number)
    step = loop.progress(number, item, 100)
    n = ctx.policy.loop.evaluation_deadline_working_days
    due = _nth_working_day_after(ctx, done_on, n)
    assert (due - done_on).days > n  # weekends lie inside the count
    assert step.stage == "evaluating" and step.detail["evaluation_due"] == due.isoformat()
    _assert_overdue_only_after_last_working_day(
        loop, clock, number, due, Stage.evaluating, "evaluation pending"
    )


@pytest.mark.parametrize(
    ("filed", "on_time"),
    [("last second of the due day", True), ("first second of the next working day", False)],
)
def test_plan_filed_on_its_due_day_is_on_time_and_the_next_working_day_is_not(
    loop, engine, clock, filed, on_time
):
    """SPEC §1 and §2.3: a plan is due within loop.plan_deadline_working_days working days of
    the decision (the decision day not counted); filed on the due day itself (up to its last
    second) it is on time, filed on the next working day it is not (Plan.on_time)."""
    ctx = loop.ctx
    decided_on = ctx.today()  # Monday 9 March 2026: the count runs over a weekend
    number = loop.report().issue_number
    decision = loop.coordinate(number)  # deadline 60 days on: the plan's due day is not capped
    due = _nth_working_day_after(ctx, decided_on, ctx.policy.loop.plan_deadline_working_days)
    assert decision.detail["plan_due"] == due.isoformat()
    next_day = _next_working_day(ctx, due)
    assert next_day == due + dt.timedelta(days=1)
    if on_time:
        clock.set(_local(ctx, due, 23, 59, 59))
    else:
        clock.set(_local(ctx, next_day, 0, 0, 1))
    result = loop.plan(number, items=1, due_in=20)
    assert result.detail["on_time"] is on_time
    assert result.detail["due"] == due.isoformat()
    with unit_of_work(engine) as s:
        ((due_date, stored_on_time),) = s.execute(select(Plan.due_date, Plan.on_time)).all()
    assert (due_date, stored_on_time) == (due, on_time)


# Distinct characters, the tails sharing none with the pool nor with each other: difflib
# then matches exactly the shared block and nothing of the tails.
_POOL = (
    "企业开办材料重复提交问题清单统一审批流程精简优化营商环境数据共享窗口服务事项跨部门协同督查考核"
)
_TAIL_A = "甲乙丙丁戊己庚辛"
_TAIL_B = "子丑寅卯辰巳午未"


def _titles(length: int, shared: int) -> tuple[str, str]:
    """Two titles of `length` characters sharing one block of `shared` characters: their
    difflib ratio is 2·shared / (2·length) = shared / length."""
    tail = length - shared
    assert 0 <= tail <= len(_TAIL_A) and shared <= len(_POOL) == len(set(_POOL))
    return _POOL[:shared] + _TAIL_A[:tail], _POOL[:shared] + _TAIL_B[:tail]


def _sizes(case: str, threshold: float) -> tuple[int, int]:
    """(length, shared) of two titles whose similarity is exactly the threshold, one matching
    character fewer, or the nearest below the threshold for titles up to the pool's length."""
    exact = Fraction(str(threshold))  # 0.88 → 22/25
    if case == "at the threshold":
        return exact.denominator, exact.numerator
    if case == "one matching character fewer":
        return exact.denominator, exact.numerator - 1
    below = [
        Fraction(shared, length)
        for length in range(2, len(_POOL) + 1)
        for shared in range(max(0, length - len(_TAIL_A)), length + 1)
        if Fraction(shared, length) < exact
    ]
    nearest = max(below)  # 0.88 → 29/33 ≈ 0.8788
    return nearest.denominator, nearest.numerator


@pytest.mark.parametrize(
    ("case", "linked"),
    [
        ("at the threshold", True),
        ("one matching character fewer", False),
        ("nearest below", False),
    ],
)
def test_duplicate_title_at_the_similarity_threshold_links_and_just_below_does_not(
    loop, engine, case, linked
):
    """SPEC §2.1 (a duplicate report of an open issue is linked to it, not opened twice), §1
    (以上 includes the number): a title whose similarity to an open issue of the same lead
    unit is exactly loop.duplicate_title_similarity is linked to it; a title just below opens
    a new issue. The similarity is checked with difflib here, in the test."""
    threshold = loop.ctx.policy.loop.duplicate_title_similarity
    length, shared = _sizes(case, threshold)
    first_title, second_title = _titles(length, shared)
    similarity = difflib.SequenceMatcher(
        None, first_title.casefold(), second_title.casefold()
    ).ratio()
    assert similarity == (2 * shared) / (2 * length)
    if linked:
        assert similarity == threshold  # the boundary itself (0.88: 25 and 25, 22 matching)
    else:
        assert similarity < threshold

    first = loop.report(title=first_title)
    second = loop.report(title=second_title)
    assert second.duplicate is linked
    assert (second.issue_number == first.issue_number) is linked
    assert _count(engine, Issue) == (1 if linked else 2)
    assert _count(engine, IssueReport) == 2


# SQLite: PostgreSQL's path locks the frame's rows, which this frame has none of in the database.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("days_past_window", "escalated"), [(0, False), (1, True)])
def test_red_item_escalated_only_when_red_for_more_than_the_window(
    engine, policy, days_past_window, escalated
):
    """SPEC §2.4: a red item left red past the escalation window goes to the leadership group;
    config progress.red_escalation_days: "red for more than this many calendar days".

    Fixed dates: an item due Tuesday 10 March 2026 is red from the 11th (colours.red_since).
    Red for exactly N = red_escalation_days calendar days is the day due + N (red on
    due+1 … due+N): not escalated. One more day (due + N + 1, red on more than N days):
    escalated. Checked on the sweep's vectorised forms: the step day it stores and reads by
    (`next_red_step_days`, equal to the scalar `next_red_step_on`) and its escalation decision
    (`_take_red_steps`)."""
    window = policy.progress.red_escalation_days
    due = dt.date(2026, 3, 10)
    today = due + dt.timedelta(days=window + days_past_window)
    red_days = (today - due).days  # calendar days it has been red, today included
    assert red_days == window + days_past_window
    interviewed = dt.datetime(2026, 3, 11, 1, tzinfo=dt.UTC)  # on its first red day
    frame = pd.DataFrame(
        {
            "id": [1],
            "issue_id": [1],
            "title": ["材料清单公布"],
            "owner_unit_id": [1],
            "start_date": [dt.date(2026, 3, 1)],
            "due_date": [due],
            "percent": [50],
            "done": [False],
            "interview_requested_at": pd.to_datetime([interviewed], utc=True),
            "escalated_at": pd.to_datetime([None], utc=True),
        }
    )
    colour = colours_frame(frame, today, policy.progress)
    assert colour.tolist() == [Colour.red.value]

    (step_day,) = next_red_step_days(frame, policy.progress)
    scalar = next_red_step_on(
        done=False,
        due=due,
        interview_requested_at=interviewed,
        escalated_at=None,
        rules=policy.progress,
    )
    assert step_day == np.datetime64(scalar, "D")
    assert bool(step_day <= np.datetime64(today, "D")) is escalated  # the sweep reads it then

    tz = ZoneInfo(policy.timezone)
    ctx = Context(
        policy=policy,
        clock=ManualClock(dt.datetime.combine(today, dt.time(9), tz)),
    )
    frame["colour"] = colour
    with unit_of_work(engine) as session:
        steps = _take_red_steps(session, ctx, frame)
    assert steps.fresh.empty  # the interview was requested already
    assert steps.overdue["id"].tolist() == ([1] if escalated else [])
    assert bool(steps.stepped[0]) is escalated


def test_a_deadline_up_to_the_horizon_is_taken_and_one_day_more_is_refused(loop, engine):
    """loop.deadline_horizon_years (10): 9999-12-31 was taken, and filing the plan then
    failed with an OverflowError traceback (an operator trial)."""
    from taskforce.db import unit_of_work
    from taskforce.errors import DomainError
    from taskforce.loop.models import Meeting

    today = loop.ctx.today()
    latest = today.replace(year=today.year + loop.ctx.policy.loop.deadline_horizon_years)
    for days, says in (((latest - today).days + 1, "is more than 10 years away"),
                       ((dt.date(9999, 12, 31) - today).days, "9999-12-31 is more than")):  # fmt: skip
        r = loop.report(title=f"期限{days}")
        with pytest.raises(DomainError, match=says) as refused:
            loop.coordinate(r.issue_number, days=days)
        assert refused.value.field == "deadline" and str(latest) in refused.value.allowed
        with unit_of_work(engine) as s:
            assert s.scalar(select(func.count()).select_from(Meeting)) == 0
    r = loop.report(title="十年期限")
    assert loop.coordinate(r.issue_number, days=(latest - today).days).stage == "planning"
    assert loop.plan(r.issue_number, due_in=(latest - today).days).stage == "executing"
