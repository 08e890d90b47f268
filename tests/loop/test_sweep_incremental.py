"""The incremental dispatch sweep: exact next-change dates, same answer as a full sweep,
nothing read or written when nothing is due, a full recompute when the colour policy changes."""

import datetime as dt
import random

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.loop import plan as pl
from taskforce.loop.colours import (
    NEVER,
    colour_of,
    next_colour_change,
    next_colour_change_frame,
    next_red_step_on,
)
from taskforce.loop.forms import ActionItemInput, PlanForm, SubProjectInput
from taskforce.loop.models import Colour, SweepState, TaskLevel, TaskNode
from taskforce.loop.sweep import dispatch_sweep, policy_fingerprint
from taskforce.notify.models import OutboxMessage
from taskforce.policy.schema import Progress
from taskforce.trail.models import TrailEntry
from tests.loop.helpers import Loop

D = dt.date
RULES = Progress(yellow_due_within_days=3, yellow_behind_expected_points=15, red_escalation_days=5)

rules_strategy = st.builds(
    Progress,
    yellow_due_within_days=st.integers(0, 15),
    yellow_behind_expected_points=st.integers(0, 100),
    red_escalation_days=st.integers(0, 10),
)


# ---------------------------------------------------------------- the next-change date


def _colour(percent, start, due, day, rules):
    return colour_of(percent=percent, done=False, start=start, due=due, today=day, rules=rules)


@settings(max_examples=400, deadline=None)
@given(
    start=st.dates(D(2025, 1, 1), D(2027, 1, 1)),
    span=st.integers(-5, 400),
    offset=st.integers(-60, 450),
    percent=st.integers(0, 100),
    rules=rules_strategy,
)
def test_next_change_is_the_first_day_the_colour_changes(start, span, offset, percent, rules):
    due = start + dt.timedelta(days=span)
    today = start + dt.timedelta(days=offset)
    now = _colour(percent, start, due, today, rules)
    change = next_colour_change(
        percent=percent, done=False, start=start, due=due, today=today, rules=rules
    )
    assert change is not None and change > today
    # Every day before the change keeps today's colour; walk past the due day when it never changes.
    horizon = change if change != NEVER else max(today, due) + dt.timedelta(days=30)
    day = today
    while day < horizon:
        assert _colour(percent, start, due, day, rules) == now, day
        day += dt.timedelta(days=1)
    if change != NEVER:
        assert _colour(percent, start, due, change, rules) != now
    else:
        assert now == Colour.red


def test_next_change_boundaries():
    start, due = D(2026, 3, 1), D(2026, 3, 31)  # 30 days, window of 3 days
    # 0 % done: 15 points behind after 4.5 days → yellow from day 5 (2026-03-06).
    assert next_colour_change(
        percent=0, done=False, start=start, due=due, today=D(2026, 3, 5), rules=RULES
    ) == D(2026, 3, 6)
    assert _colour(0, start, due, D(2026, 3, 5), RULES) == Colour.green
    assert _colour(0, start, due, D(2026, 3, 6), RULES) == Colour.yellow
    # Exactly on the line (span 40, 50 % at day 20, 35 % done): yellow that day, not the next.
    s2, d2 = D(2026, 3, 1), D(2026, 4, 10)
    assert next_colour_change(
        percent=35, done=False, start=s2, due=d2, today=D(2026, 3, 20), rules=RULES
    ) == D(2026, 3, 21)
    # 90 % done: never behind; the due window (3 days) opens on 03-28.
    assert next_colour_change(
        percent=90, done=False, start=start, due=due, today=D(2026, 3, 10), rules=RULES
    ) == D(2026, 3, 28)
    # Yellow turns red the day after the due day; red never changes; done is never swept.
    assert next_colour_change(
        percent=90, done=False, start=start, due=due, today=D(2026, 3, 31), rules=RULES
    ) == D(2026, 4, 1)
    assert (
        next_colour_change(
            percent=90, done=False, start=start, due=due, today=D(2026, 4, 1), rules=RULES
        )
        == NEVER
    )
    assert (
        next_colour_change(percent=100, done=True, start=start, due=due, today=due, rules=RULES)
        is None
    )


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.dates(D(2025, 1, 1), D(2027, 1, 1)),
            st.integers(-5, 400),
            st.integers(0, 100),
            st.booleans(),
        ),
        min_size=1,
        max_size=20,
    ),
    today=st.dates(D(2024, 12, 1), D(2028, 3, 1)),
    rules=rules_strategy,
)
def test_vectorised_next_change_equals_the_scalar_rule(rows, today, rules):
    frame = pd.DataFrame(
        {
            "start_date": [r[0] for r in rows],
            "due_date": [r[0] + dt.timedelta(days=r[1]) for r in rows],
            "percent": [r[2] for r in rows],
            "done": [r[3] for r in rows],
        }
    )
    got = next_colour_change_frame(frame, today, rules).to_numpy("datetime64[D]")
    for value, (start, span, percent, done) in zip(got, rows, strict=True):
        want = next_colour_change(
            percent=percent,
            done=done,
            start=start,
            due=start + dt.timedelta(days=span),
            today=today,
            rules=rules,
        )
        assert (None if pd.isna(value) else value.astype(object)) == want


def test_next_red_step_boundaries():
    since = dt.datetime(2026, 4, 1, 15, 59, tzinfo=dt.UTC)  # 23:59 in Shanghai on 04-01
    common = {"today": D(2026, 4, 2), "rules": RULES, "timezone": "Asia/Shanghai"}
    assert next_red_step_on(colour=Colour.yellow, colour_since=since, interview_requested_at=None, escalated_at=None, **common) is None  # fmt: skip
    assert next_red_step_on(colour=Colour.red, colour_since=since, interview_requested_at=None, escalated_at=None, **common) == D(2026, 4, 2)  # fmt: skip
    # Interviewed: escalation falls due 5 days after it turned red, on the local date.
    assert next_red_step_on(colour=Colour.red, colour_since=since, interview_requested_at=since, escalated_at=None, **common) == D(2026, 4, 6)  # fmt: skip
    assert next_red_step_on(colour=Colour.red, colour_since=since, interview_requested_at=since, escalated_at=since, **common) is None  # fmt: skip


# ---------------------------------------------------------------- sweeps on a database


@pytest.fixture
def loop(engine, policy, clock):
    return Loop(engine, Context(policy=policy, clock=clock))


def _sweep(loop, ctx=None, **kw):
    with unit_of_work(loop.engine) as s:
        return dispatch_sweep(s, ctx or loop.ctx, **kw)


def _snapshot(engine) -> list[tuple]:
    with unit_of_work(engine) as s:
        return [
            tuple(r)
            for r in s.execute(
                select(
                    TaskNode.id,
                    TaskNode.colour,
                    TaskNode.colour_since,
                    TaskNode.interview_requested_at,
                    TaskNode.escalated_at,
                    TaskNode.next_colour_change_on,
                    TaskNode.next_action_on,
                    TaskNode.progress_percent,
                    TaskNode.done,
                )
                .where(TaskNode.level == TaskLevel.action_item)
                .order_by(TaskNode.id)
            )
        ]


def _counts(engine) -> tuple[int, int]:
    with unit_of_work(engine) as s:
        return (
            s.scalar(select(func.count()).select_from(TrailEntry)),
            s.scalar(select(func.count()).select_from(OutboxMessage)),
        )


def _scene(loop, rng: random.Random, issues: int = 3, items: int = 6) -> list[str]:
    """Executing issues whose items have varied starts, due days and progress."""
    numbers = []
    today = loop.ctx.today()
    for n in range(issues):
        r = loop.report(title=f"场景问题{n}号材料重复提交{rng.random()}")
        loop.coordinate(r.issue_number, days=60)
        actions = []
        for i in range(items):
            start = today - dt.timedelta(days=rng.randint(0, 20))
            due = today + dt.timedelta(days=rng.randint(0, 45))
            actions.append(
                ActionItemInput(
                    title=f"行动项{i}",
                    owner_unit="market-reg",
                    start_date=start,
                    due_date=due,
                    deliverable="按期交付",
                )
            )
        form = PlanForm(
            goal="按期办结", sub_projects=[SubProjectInput(title="子项目", action_items=actions)]
        )
        loop._run(pl.file_plan, r.issue_number, form)
        numbers.append(r.issue_number)
    return numbers


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 11])
def test_incremental_sweep_leaves_what_a_full_sweep_would(loop, engine, clock, seed):
    """Day by day with progress reports in between: after every incremental sweep a forced
    full sweep finds nothing to do and writes nothing, and the colours stored equal the rule."""
    rng = random.Random(seed)
    numbers = _scene(loop, rng)
    _sweep(loop, board=False)  # the first sweep: no state yet, a full recompute
    examined = []
    for _day in range(60):
        clock.advance(days=1, hours=rng.choice([0, 0, 3, -2]))
        for number in numbers:
            for task in loop.items(number, open_only=True):
                if rng.random() < 0.15:
                    with unit_of_work(engine) as s:
                        percent = s.get(TaskNode, task).progress_percent
                    loop.progress(number, task, min(100, percent + rng.randint(1, 40)), note="进展")
        incremental = _sweep(loop, board=False)
        assert not incremental.full
        examined.append(incremental.examined)
        before, written = _snapshot(engine), _counts(engine)
        full = _sweep(loop, board=False, full=True)
        assert full.full and full.recoloured == 0 and full.newly_red == [] and full.escalated == []
        assert full.new_overdue == 0
        assert _snapshot(engine) == before and _counts(engine) == written
        board = _sweep(loop)  # the report agrees with the rule applied to every item
        if board.cockpit is not None and len(board.cockpit):
            with unit_of_work(engine) as s:
                stored = dict(
                    s.execute(
                        select(TaskNode.id, TaskNode.colour).where(
                            TaskNode.id.in_(board.cockpit["item_id"].astype(int).tolist())
                        )
                    ).all()
                )
            assert {
                int(i): c
                for i, c in zip(board.cockpit["item_id"], board.cockpit["colour"], strict=True)
            } == {i: Colour(c).value for i, c in stored.items()}
    # Incremental: on most days only a few items were read, not all of them.
    assert sum(examined) < 60 * 18 / 2


def test_second_run_with_nothing_changed_reads_and_writes_nothing(loop, engine, clock):
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=3, due_in=10)
    first = _sweep(loop, board=False)
    assert first.full and first.examined == 3
    clock.advance(days=12)  # past due: all three turn red
    second = _sweep(loop, board=False)
    assert not second.full and second.examined == 3 and len(second.newly_red) == 3
    before, written = _snapshot(engine), _counts(engine)
    third = _sweep(loop, board=False)
    assert third.examined == 0 and third.recoloured == 0 and third.newly_red == []
    assert _snapshot(engine) == before and _counts(engine) == written
    # Red items are read again on the day their escalation falls due, and then never.
    clock.advance(days=5)
    fourth = _sweep(loop, board=False)
    assert fourth.examined == 3 and len(fourth.escalated) == 3
    assert _sweep(loop, board=False).examined == 0


def test_progress_report_stores_the_next_change(loop, engine, clock):
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=1, due_in=20)
    task = loop.items(r.issue_number)[0]
    today = loop.ctx.today()
    with unit_of_work(engine) as s:
        # filed today with 0 %: the line is 15 points ahead on day 3 of 20
        assert s.get(TaskNode, task).next_colour_change_on == today + dt.timedelta(days=3)
    loop.progress(r.issue_number, task, 50)
    with unit_of_work(engine) as s:  # 65 % of 20 days = day 13; the window opens on day 17
        assert s.get(TaskNode, task).next_colour_change_on == today + dt.timedelta(days=13)
    loop.progress(r.issue_number, task, 100)
    with unit_of_work(engine) as s:
        item = s.get(TaskNode, task)
        assert item.done and item.next_colour_change_on is None and item.next_action_on is None


def test_rows_without_a_date_are_recomputed(loop, engine, clock):
    """NULL (rows from before the migration, or written by code that does not set it) means
    'unknown': the next incremental sweep reads and dates them."""
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=2, due_in=2)  # due within the window: yellow at filing
    _sweep(loop, board=False)
    with unit_of_work(engine) as s:
        s.execute(
            update(TaskNode)
            .where(TaskNode.level == TaskLevel.action_item)
            .values(colour=Colour.green, next_colour_change_on=None)
        )
    again = _sweep(loop, board=False)
    assert not again.full and again.examined == 2 and again.recoloured == 2
    assert {row[1] for row in _snapshot(engine)} == {Colour.yellow}
    assert all(row[5] == loop.ctx.today() + dt.timedelta(days=3) for row in _snapshot(engine))


def test_changed_colour_policy_forces_a_full_recompute(loop, engine, clock, policy):
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=2, due_in=10)  # 10 days left, window 3: green
    first = _sweep(loop, board=False)
    assert first.colours == {} and _sweep(loop, board=False).examined == 0
    wider = policy.model_copy(
        update={"progress": policy.progress.model_copy(update={"yellow_due_within_days": 10})}
    )
    assert policy_fingerprint(wider) != policy_fingerprint(policy)
    ctx = Context(policy=wider, clock=clock)
    changed = _sweep(loop, ctx, board=False)
    # Under the old dates nothing was due until day 7; the new window makes both yellow now.
    assert changed.full and changed.examined == 2 and changed.recoloured == 2
    with unit_of_work(engine) as s:
        assert s.get(SweepState, 1).policy_fingerprint == policy_fingerprint(wider)
    assert {row[1] for row in _snapshot(engine)} == {Colour.yellow}
    assert _sweep(loop, ctx, board=False).examined == 0  # and then incremental again


def test_dates_stored_under_another_policy_force_a_recompute(loop, engine, clock, policy):
    """Policy A → B (a progress report stores B's dates) → A: the sweep must not take B's
    dates for A's, although A's fingerprint is the one it recorded."""
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=1, due_in=10)
    task = loop.items(r.issue_number)[0]
    assert _sweep(loop, board=False).full
    strict = policy.model_copy(
        update={"progress": policy.progress.model_copy(update={"yellow_due_within_days": 0})}
    )
    loop_b = Loop(engine, Context(policy=strict, clock=clock))
    loop_b.progress(r.issue_number, task, 90)  # B: window 0 → yellow first on the due day
    with unit_of_work(engine) as s:
        assert s.get(TaskNode, task).next_colour_change_on == loop.ctx.today() + dt.timedelta(10)
    clock.advance(days=7)  # under A the window (3 days) opened today: yellow
    back = _sweep(loop, board=False)
    assert back.full and back.recoloured == 1
    assert _snapshot(engine)[0][1] == Colour.yellow


def test_board_is_the_same_report_as_before(loop, clock):
    """dispatch_sweep(board=True) gives the counts and the cockpit over every open item, as
    the sweep did when it read them all (tests/loop/test_sweep.py holds the older cases)."""
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=3, due_in=10)
    clock.advance(days=8)  # 2 days left: yellow
    result = _sweep(loop)
    assert result.items == 3 and result.colours == {"green": 0, "yellow": 3, "red": 0}
    assert list(result.cockpit["colour"]) == ["yellow"] * 3
    assert len(result.deviation) == 3


def test_stage_backdated_after_the_last_sweep_is_still_warned(loop, engine, clock, policy):
    """An issue entered after the last sweep with earlier times (an import, a backdated
    report) is overdue at once: the sweep warns it, once."""
    from taskforce.clock import ManualClock

    _sweep(loop, board=False)
    past = Loop(
        engine, Context(policy=policy, clock=ManualClock(clock.now() - dt.timedelta(days=60)))
    )
    past.report(title="六十天前上报的问题")
    clock.advance(hours=1)
    first = _sweep(loop, board=False)
    assert first.new_overdue == 1 and len(first.overdue_stages) == 1
    assert _sweep(loop, board=False).new_overdue == 0
