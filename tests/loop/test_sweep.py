import datetime as dt

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency.models import EarlyWarning
from taskforce.loop.colours import colour_of, colours_frame
from taskforce.loop.models import Colour, TaskNode
from taskforce.loop.sweep import dispatch_sweep
from taskforce.notify.models import OutboxMessage
from taskforce.policy.schema import Progress
from taskforce.trail.models import TrailEntry
from tests.loop.helpers import Loop

RULES = Progress(yellow_due_within_days=3, yellow_behind_expected_points=15, red_escalation_days=5)
D = dt.date


@pytest.mark.parametrize(
    ("today", "percent", "colour"),
    [
        (
            D(2026, 3, 31),
            50,
            Colour.yellow,
        ),  # due today: not overdue yet, within the warning window
        (D(2026, 4, 1), 99, Colour.red),  # one day past due
        (D(2026, 3, 28), 90, Colour.yellow),  # exactly 3 days left: within the window
        (D(2026, 3, 27), 90, Colour.green),  # 4 days left and on track
        (D(2026, 3, 11), 0, Colour.yellow),  # 33 % expected, 0 % done: more than 15 points behind
    ],
)
def test_colour_boundaries(today, percent, colour):
    start, due = D(2026, 3, 1), D(2026, 3, 31)
    got = colour_of(percent=percent, done=False, start=start, due=due, today=today, rules=RULES)
    assert got == colour


def test_behind_expected_boundary():
    start, due = D(2026, 3, 1), D(2026, 4, 10)  # 40 days
    today = D(2026, 3, 21)  # 50 % expected
    assert (
        colour_of(percent=35, done=False, start=start, due=due, today=today, rules=RULES)
        == Colour.yellow
    )
    assert (
        colour_of(percent=36, done=False, start=start, due=due, today=today, rules=RULES)
        == Colour.green
    )


def test_done_is_green_even_when_late():
    assert (
        colour_of(
            percent=100,
            done=True,
            start=D(2026, 1, 1),
            due=D(2026, 1, 2),
            today=D(2026, 5, 1),
            rules=RULES,
        )
        == Colour.green
    )


@settings(max_examples=300, deadline=None)
@given(
    start=st.dates(D(2025, 1, 1), D(2027, 1, 1)),
    span=st.integers(0, 400),
    offset=st.integers(-50, 500),
    percent=st.integers(0, 100),
    done=st.booleans(),
)
def test_vectorised_colours_equal_the_scalar_rule(start, span, offset, percent, done):
    due = start + dt.timedelta(days=span)
    today = start + dt.timedelta(days=offset)
    frame = pd.DataFrame(
        {"percent": [percent], "done": [done], "start_date": [start], "due_date": [due]}
    )
    assert (
        colours_frame(frame, today, RULES).iloc[0]
        == colour_of(
            percent=percent, done=done, start=start, due=due, today=today, rules=RULES
        ).value
    )


@pytest.fixture
def loop(engine, policy, clock):
    return Loop(engine, Context(policy=policy, clock=clock))


def _count(engine, model, *where):
    with unit_of_work(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def _sweep(loop):
    with unit_of_work(loop.engine) as s:
        return dispatch_sweep(s, loop.ctx)


def test_sweep_interviews_red_items_once_and_escalates(loop, engine, clock):
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=3, due_in=10)
    first = _sweep(loop)
    assert first.items == 3 and first.colours["green"] == 3 and first.newly_red == []
    assert first.full  # the first sweep reads every open item (no sweep state yet)
    clock.advance(days=12)  # past due: red since due + 1, yesterday
    second = _sweep(loop)
    assert second.colours["red"] == 3 and len(second.newly_red) == 3 and second.escalated == []
    outbox = _count(engine, OutboxMessage)
    trail = _count(engine, TrailEntry)
    third = _sweep(loop)  # nothing changed: nothing sent, nothing written
    assert third.newly_red == [] and third.escalated == [] and third.examined == 0
    assert _count(engine, OutboxMessage) == outbox and _count(engine, TrailEntry) == trail
    clock.advance(days=4)  # due + 6: red for the window (5 days since due + 1), escalates
    fourth = _sweep(loop)
    assert len(fourth.escalated) == 3
    assert _count(engine, EarlyWarning) == 3
    with unit_of_work(engine) as s:  # titled in the office's language (policy.locale: zh-CN)
        titles = set(s.scalars(select(EarlyWarning.title)))
        names = dict(s.execute(select(TaskNode.id, TaskNode.title)).all())
    # Named by the item's title (a meeting reads "行动项 127" as nothing), its id beside it.
    assert titles == {
        f"{r.issue_number}：行动项「{names[item]}」（{item}）亮红灯已超过 5 天"
        for item in fourth.escalated
    }
    fifth = _sweep(loop)
    assert fifth.escalated == []
    assert _count(engine, EarlyWarning) == 3
    assert set(fourth.cockpit["colour"]) == {"red"} and (fourth.cockpit["days_late"] > 0).all()


def test_sweep_red_not_escalated_one_day_before_window(loop, clock):
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=1, due_in=10)
    clock.advance(days=10)  # the due day: yellow, no step yet
    assert _sweep(loop).newly_red == []
    clock.advance(days=1)  # due + 1, the first red day: the interview
    assert len(_sweep(loop).newly_red) == 1
    clock.advance(days=4)  # red for 4 days of 5
    assert _sweep(loop).escalated == []
    clock.advance(days=1)  # red for 5: escalated
    assert len(_sweep(loop).escalated) == 1


def test_a_weekly_sweep_that_finds_an_item_red_past_the_window_interviews_and_escalates(
    loop, clock
):
    """Red is counted from the first red day, not from the sweep that saw it: an item red for
    six days when the weekly sweep runs goes to the leadership group in that run."""
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=1, due_in=10)
    clock.advance(days=16)  # due + 6
    result = _sweep(loop)
    assert len(result.newly_red) == 1 and result.escalated == result.newly_red


def test_overdue_stage_warned_once(loop, engine, clock):
    loop.report()  # coordination due in 3 working days
    assert _sweep(loop).new_overdue == 0
    clock.advance(days=7)
    first = _sweep(loop)
    assert first.new_overdue == 1 and first.overdue_stages[0]["what"] == "coordination not held"
    again = _sweep(loop)
    assert again.new_overdue == 0 and len(again.overdue_stages) == 1
    assert _count(engine, OutboxMessage, OutboxMessage.event_kind == "stage_overdue") == 1


def test_deviation_analysis_uses_latest_progress_note(loop, clock):
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=1, due_in=10)
    task = loop.items(r.issue_number)[0]
    loop.progress(r.issue_number, task, 10, note="第一次说明")
    clock.advance(days=6)
    loop.progress(r.issue_number, task, 20, note="接口未开放")
    result = _sweep(loop)
    assert list(result.deviation["reason"]) == ["接口未开放"]
    assert result.deviation["deviation"].iloc[0] < 0


def test_a_sweep_at_a_time_with_microseconds_steps_red_items(loop, engine, clock):
    """An operator trial: the deployed sweep failed with pandas 3 ("Invalid value '2026-11-29
    03:32:48.304465+00:00' for dtype 'datetime64[s, UTC]'"): with no interview requested
    yet the column was read at whole seconds, and a real clock has microseconds. The tests'
    clock reads whole hours."""
    clock.set(dt.datetime(2026, 3, 9, 1, 0, tzinfo=dt.UTC))  # whole seconds first
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=2, due_in=10)
    _sweep(loop)
    clock.advance(days=12, seconds=48.304465)  # red since yesterday; now 01:00:48.304465
    interviewed = _sweep(loop)
    assert len(interviewed.newly_red) == 2
    clock.advance(days=4, microseconds=1)  # past the window: escalated
    escalated = _sweep(loop)
    assert len(escalated.escalated) == 2
    with unit_of_work(engine) as s:
        times = s.execute(
            select(TaskNode.interview_requested_at, TaskNode.escalated_at).where(
                TaskNode.interview_requested_at.is_not(None)
            )
        ).all()
    assert len(times) == 2
    for asked, raised in times:  # stored to the microsecond, as the clock read them
        assert asked.replace(tzinfo=dt.UTC) == dt.datetime(2026, 3, 21, 1, 0, 48, 304465, dt.UTC)
        assert raised.replace(tzinfo=dt.UTC) == dt.datetime(2026, 3, 25, 1, 0, 48, 304466, dt.UTC)
