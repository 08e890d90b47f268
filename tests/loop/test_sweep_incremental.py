"""Derived colours and the incremental dispatch sweep: the colour rule is the same in Python,
pandas and SQL on every input; the sweep reads only items whose red-item step is due, leaves
what a full sweep would, reads and writes nothing when nothing is due, and recomputes every
open item when the colour policy changes."""

import datetime as dt
import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.loop import plan as pl
from taskforce.loop.colours import (
    NEVER,
    colour_of,
    colour_sql,
    colours_frame,
    escalation_day,
    next_red_step_days,
    next_red_step_on,
    red_since,
)
from taskforce.loop.forms import ActionItemInput, PlanForm, SubProjectInput
from taskforce.loop.models import SweepState, TaskLevel, TaskNode
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


# ---------------------------------------------------------------- one rule, three shapes

# A table of just the columns the rule reads: the SQL form is checked on the database itself.
_ITEMS = Table(
    "colour_rule_probe",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("level", String(32)),
    Column("start_date", Date),
    Column("due_date", Date),
    Column("progress_percent", Integer),
    Column("done", Boolean),
)

item_rows = st.lists(
    st.tuples(
        st.dates(D(2025, 1, 1), D(2027, 1, 1)) | st.none(),  # start (none: counts as due)
        st.integers(-5, 400) | st.none(),  # span (none: no due date, never late)
        st.integers(0, 100),  # percent
        st.booleans(),  # done
    ),
    min_size=1,
    max_size=25,
)


def _due(start, span):
    if span is None:
        return None
    return (start or D(2026, 1, 1)) + dt.timedelta(days=span)


@pytest.fixture
def probe(engine):
    _ITEMS.create(engine)
    yield engine
    _ITEMS.drop(engine)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=item_rows, today=st.dates(D(2024, 12, 1), D(2028, 3, 1)), rules=rules_strategy)
def test_the_colour_rule_is_the_same_in_python_pandas_and_sql(probe, rows, today, rules):
    """colour_of, colours_frame and colour_sql (on this database) agree on every item, at
    every boundary: the due window's first day, the line's crossing, the day after the due day."""
    values = [
        {
            "id": n,
            "level": TaskLevel.action_item.value,
            "start_date": start,
            "due_date": _due(start, span),
            "progress_percent": percent,
            "done": done,
        }
        for n, (start, span, percent, done) in enumerate(rows)
    ]
    with probe.begin() as conn:
        conn.execute(delete(_ITEMS))
        conn.execute(insert(_ITEMS), values)
        in_sql = dict(
            conn.execute(
                select(_ITEMS.c.id, colour_sql(today, rules, _ITEMS.c)).order_by(_ITEMS.c.id)
            ).all()
        )
    frame = pd.DataFrame(values).rename(columns={"progress_percent": "percent"})
    in_pandas = colours_frame(frame, today, rules).tolist()
    for v in values:
        want = colour_of(
            percent=v["progress_percent"],
            done=v["done"],
            start=v["start_date"],
            due=v["due_date"],
            today=today,
            rules=rules,
        ).value
        assert (in_sql[v["id"]], in_pandas[v["id"]]) == (want, want), v


def test_colour_boundaries_in_sql(probe):
    """The same boundaries as tests/loop/test_sweep.py, through the database."""
    start, due = D(2026, 3, 1), D(2026, 3, 31)  # 30 days; window 3; 15 points
    cases = [
        (D(2026, 3, 5), 0, "green"),  # 13.3 points behind
        (D(2026, 3, 6), 0, "yellow"),  # 16.7 points behind
        (D(2026, 3, 27), 90, "green"),  # 4 days left
        (D(2026, 3, 28), 90, "yellow"),  # 3 days left: the window
        (D(2026, 3, 31), 90, "yellow"),  # the due day
        (D(2026, 4, 1), 90, "red"),  # the day after
    ]
    with probe.begin() as conn:
        for n, (today, percent, want) in enumerate(cases):
            conn.execute(delete(_ITEMS))
            conn.execute(
                insert(_ITEMS),
                [
                    {"id": n, "level": "action_item", "start_date": start, "due_date": due,
                     "progress_percent": percent, "done": False},
                    {"id": 100 + n, "level": "sub_project", "start_date": start, "due_date": due,
                     "progress_percent": 0, "done": False},
                ],
            )  # fmt: skip
            got = dict(conn.execute(select(_ITEMS.c.id, colour_sql(today, RULES, _ITEMS.c))).all())
            assert got == {n: want, 100 + n: "green"}, today  # a sub-project has no light


def test_next_red_step_boundaries():
    due = D(2026, 3, 31)
    assert red_since(due) == D(2026, 4, 1) and escalation_day(due, RULES) == D(2026, 4, 6)
    at = dt.datetime(2026, 4, 1, 1, 0, tzinfo=dt.UTC)
    step = {"due": due, "rules": RULES}
    assert next_red_step_on(done=False, interview_requested_at=None, escalated_at=None, **step) == D(2026, 4, 1)  # fmt: skip
    assert next_red_step_on(done=False, interview_requested_at=at, escalated_at=None, **step) == D(2026, 4, 6)  # fmt: skip
    assert next_red_step_on(done=False, interview_requested_at=at, escalated_at=at, **step) == NEVER  # fmt: skip
    assert next_red_step_on(done=True, interview_requested_at=None, escalated_at=None, **step) is None  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.dates(D(2025, 1, 1), D(2027, 1, 1)),
            st.booleans(),
            st.booleans(),
            st.booleans(),
        ),
        min_size=1,
        max_size=20,
    ),
    rules=rules_strategy,
)
def test_vectorised_next_red_step_equals_the_scalar_rule(rows, rules):
    at = pd.Timestamp("2026-05-01T02:00:00Z")
    frame = pd.DataFrame(
        {
            "due_date": [r[0] for r in rows],
            "done": [r[1] for r in rows],
            "interview_requested_at": pd.Series([at if r[2] else pd.NaT for r in rows]),
            "escalated_at": pd.Series([at if r[3] else pd.NaT for r in rows]),
        }
    )
    got = next_red_step_days(frame, rules)
    for value, (due, done, interviewed, escalated) in zip(got, rows, strict=True):
        want = next_red_step_on(
            done=done,
            due=due,
            interview_requested_at=at if interviewed else None,
            escalated_at=at if escalated else None,
            rules=rules,
        )
        assert (None if pd.isna(value) else value.astype(object)) == want


# ---------------------------------------------------------------- sweeps on a database


@pytest.fixture
def loop(engine, policy, clock):
    return Loop(engine, Context(policy=policy, clock=clock))


def _someone_waits_on_a_lock(engine) -> bool:
    """PostgreSQL: a session of this database is waiting for a row or table lock."""
    from sqlalchemy import text

    with engine.connect() as probe:
        return bool(
            probe.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            )
        )


class _ReportInThread:
    """A progress report run in a thread that the sweep's write-back starts (see
    `_report_during_write_back`); its failure is handed to the test's thread."""

    def __init__(self, report) -> None:
        import threading

        self.failures: list[BaseException] = []
        self.over = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(report,))

    def _run(self, report) -> None:
        try:
            report()
        except BaseException as exc:
            self.failures.append(exc)
        finally:
            self.over.set()

    def assert_done(self) -> None:
        self.thread.join(30)
        assert self.over.is_set() and not self.failures, self.failures


def _report_during_write_back(monkeypatch, engine, report) -> _ReportInThread:
    """PostgreSQL: when the sweep is about to write its items back, start `report` and let
    the write-back go on once the report has finished or waits for a lock."""
    from taskforce.loop import sweep

    running = _ReportInThread(report)
    real_write = sweep._write_items

    def report_then_write(session, ctx, items, stepped, **how):
        running.thread.start()
        deadline = dt.datetime.now() + dt.timedelta(seconds=30)
        while not running.over.wait(0.05) and not _someone_waits_on_a_lock(engine):
            assert dt.datetime.now() < deadline, "the report neither finished nor waited"
        real_write(session, ctx, items, stepped, **how)

    monkeypatch.setattr(sweep, "_write_items", report_then_write)
    return running


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
                    TaskNode.interview_requested_at,
                    TaskNode.escalated_at,
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
        loop.ctx.clock.advance(days=-20)  # reported 20 days ago: the items started since
        r = loop.report(title=f"场景问题{n}号材料重复提交{rng.random()}")
        loop.ctx.clock.advance(days=20)
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
    full sweep finds nothing to do and writes nothing, and the cockpit's colours (pandas)
    equal the database's (colour_sql) for every item."""
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
        assert full.full and full.newly_red == [] and full.escalated == []
        assert full.new_overdue == 0
        assert _snapshot(engine) == before and _counts(engine) == written
        board = _sweep(loop)  # the report agrees with the rule applied to every item
        if board.cockpit is not None and len(board.cockpit):
            rule = colour_sql(loop.ctx.today(), loop.ctx.policy.progress)
            with unit_of_work(engine) as s:
                in_sql = dict(
                    s.execute(
                        select(TaskNode.id, rule).where(
                            TaskNode.id.in_(board.cockpit["item_id"].astype(int).tolist())
                        )
                    ).all()
                )
            assert {
                int(i): c
                for i, c in zip(board.cockpit["item_id"], board.cockpit["colour"], strict=True)
            } == in_sql
    # Incremental: on most days only a few items were read, not all of them.
    assert sum(examined) < 60 * 18 / 4


def test_second_run_with_nothing_changed_reads_and_writes_nothing(loop, engine, clock):
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=3, due_in=10)
    first = _sweep(loop, board=False)
    assert first.full and first.examined == 3
    clock.advance(days=9)  # yellow (due tomorrow): the colour changed, no step is due
    assert _sweep(loop, board=False).examined == 0
    clock.advance(days=3)  # past due: all three red
    second = _sweep(loop, board=False)
    assert not second.full and second.examined == 3 and len(second.newly_red) == 3
    before, written = _snapshot(engine), _counts(engine)
    third = _sweep(loop, board=False)
    assert third.examined == 0 and third.newly_red == []
    assert _snapshot(engine) == before and _counts(engine) == written
    # Red items are read again on the day their escalation falls due, and then never.
    clock.advance(days=4)
    fourth = _sweep(loop, board=False)
    assert fourth.examined == 3 and len(fourth.escalated) == 3
    assert _sweep(loop, board=False).examined == 0


def test_plan_and_progress_store_the_next_step_day(loop, engine, clock):
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=1, due_in=20)
    task = loop.items(r.issue_number)[0]
    due = loop.ctx.today() + dt.timedelta(days=20)
    with unit_of_work(engine) as s:  # filed: its interview falls due on its first red day
        assert s.get(TaskNode, task).next_action_on == due + dt.timedelta(days=1)
    loop.progress(r.issue_number, task, 50)  # progress moves the colour, not the step day
    with unit_of_work(engine) as s:
        assert s.get(TaskNode, task).next_action_on == due + dt.timedelta(days=1)
    clock.advance(days=22)  # red since yesterday; the report requests the interview itself
    loop.progress(r.issue_number, task, 60)
    with unit_of_work(engine) as s:
        item = s.get(TaskNode, task)
        assert item.interview_requested_at is not None
        assert item.next_action_on == due + dt.timedelta(days=6)  # the escalation's day
    loop.progress(r.issue_number, task, 100)
    with unit_of_work(engine) as s:
        item = s.get(TaskNode, task)
        assert item.done and item.next_action_on is None


def test_colours_move_with_the_clock_without_a_sweep(loop, engine, clock):
    """Derived, not stored: counts and ledgers show today's colour whatever the last sweep
    saw (a stored colour was as old as the last weekly sweep)."""
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=2, due_in=10)
    _sweep(loop, board=False)

    def counts():
        rule = colour_sql(loop.ctx.today(), loop.ctx.policy.progress)
        with unit_of_work(engine) as s:
            return dict(
                s.execute(
                    select(rule, func.count())
                    .where(TaskNode.level == TaskLevel.action_item)
                    .group_by(rule)
                ).all()
            )

    assert counts() == {"green": 2}
    clock.advance(days=7)  # 3 days left: the window
    assert counts() == {"yellow": 2}
    clock.advance(days=4)  # the day after the due day
    assert counts() == {"red": 2}


def test_rows_without_a_date_are_recomputed(loop, engine, clock):
    """NULL (rows written by code that does not set it) means 'unknown': the next incremental
    sweep reads and dates them."""
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=2, due_in=2)
    _sweep(loop, board=False)
    with unit_of_work(engine) as s:
        s.execute(
            update(TaskNode)
            .where(TaskNode.level == TaskLevel.action_item)
            .values(next_action_on=None)
        )
    again = _sweep(loop, board=False)
    assert not again.full and again.examined == 2
    assert all(row[3] == loop.ctx.today() + dt.timedelta(days=3) for row in _snapshot(engine))
    assert _sweep(loop, board=False).examined == 0


def test_changed_colour_policy_forces_a_full_recompute(loop, engine, clock, policy):
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=2, due_in=2)
    assert _sweep(loop, board=False).full
    clock.advance(days=3)  # red: interviewed, escalation due 5 days after the first red day
    assert len(_sweep(loop, board=False).newly_red) == 2
    shorter = policy.model_copy(
        update={"progress": policy.progress.model_copy(update={"red_escalation_days": 0})}
    )
    assert policy_fingerprint(shorter) != policy_fingerprint(policy)
    ctx = Context(policy=shorter, clock=clock)
    changed = _sweep(loop, ctx, board=False)
    # Under the old days nothing was due before due + 6; the new window escalates both now.
    assert changed.full and changed.examined == 2 and len(changed.escalated) == 2
    with unit_of_work(engine) as s:
        assert s.get(SweepState, 1).policy_fingerprint == policy_fingerprint(shorter)
    assert {row[3] for row in _snapshot(engine)} == {NEVER}
    assert _sweep(loop, ctx, board=False).examined == 0  # and then incremental again


def test_dates_stored_under_another_policy_force_a_recompute(loop, engine, clock, policy):
    """Policy A → B (a progress report stores B's days) → A: the sweep must not take B's
    days for A's, although A's fingerprint is the one it recorded."""
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=1, due_in=1)
    task = loop.items(r.issue_number)[0]
    assert _sweep(loop, board=False).full
    clock.advance(days=2)  # red since today
    longer = policy.model_copy(
        update={"progress": policy.progress.model_copy(update={"red_escalation_days": 30})}
    )
    loop_b = Loop(engine, Context(policy=longer, clock=clock))
    loop_b.progress(r.issue_number, task, 90)  # B: interviewed, escalation in 30 days
    with unit_of_work(engine) as s:
        assert s.get(TaskNode, task).next_action_on == loop.ctx.today() + dt.timedelta(30)
    clock.advance(days=5)  # under A (5 days) the escalation is due today
    back = _sweep(loop, board=False)
    assert back.full and len(back.escalated) == 1


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
    assert first.new_overdue == 1 and first.overdue_stages == []  # the list is the report's
    again = _sweep(loop)
    assert again.new_overdue == 0 and len(again.overdue_stages) == 1


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_step_taken_while_the_sweep_ran_is_kept(loop, engine, clock):
    """PostgreSQL reads the sweep's items without a lock. A progress report that requested an
    item's interview, or completed an item, after the sweep read them is not written over
    with the sweep's stale values."""
    from taskforce.loop.sweep import _open_items, _write_items

    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=2, due_in=1)
    interviewed, completed = loop.items(r.issue_number)
    _sweep(loop, board=False)
    clock.advance(days=2)  # both red, neither interviewed
    with unit_of_work(engine) as sweep_session:
        items = _open_items(sweep_session, loop.ctx.today())
        assert set(items["id"]) == {interviewed, completed}
        # Another process, committed meanwhile: one item's report, the other's completion.
        loop.progress(r.issue_number, interviewed, 50)
        loop.progress(r.issue_number, completed, 100)
        moved = np.ones(len(items), dtype=bool)  # the sweep writes both rows back
        _write_items(sweep_session, loop.ctx, items, moved, full=False)
    with unit_of_work(engine) as s:
        kept = s.get(TaskNode, interviewed)
        assert kept.interview_requested_at is not None  # not the NULL the sweep read
        done = s.get(TaskNode, completed)
        assert done.done and done.next_action_on is None


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_an_item_reported_while_the_sweep_ran_is_not_stepped_again(
    loop, engine, clock, monkeypatch
):
    """PostgreSQL: a progress report committed between the sweep's read and its steps. The
    report requested one item's interview and completed the other: the sweep sends no second
    interview notice and no orange warning about the finished item (it locks the items it
    steps and looks again)."""
    from taskforce.loop import sweep

    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=2, due_in=1)
    interviewed, completed = loop.items(r.issue_number)
    _sweep(loop, board=False)
    clock.advance(days=10)  # both red and past the escalation window, no step taken yet
    real_read = sweep._open_items

    def read_then_report(session, due_by=None):  # the real read, then another process
        items = real_read(session, due_by)
        loop.progress(r.issue_number, interviewed, 50)  # still red: requests the interview
        loop.progress(r.issue_number, completed, 100)
        return items

    monkeypatch.setattr(sweep, "_open_items", read_then_report)
    result = _sweep(loop, board=False)
    assert interviewed not in result.newly_red and completed not in result.newly_red
    assert result.escalated == [interviewed]  # the report escalates nothing; the sweep does
    with unit_of_work(engine) as s:
        kept = s.get(TaskNode, interviewed)
        assert kept.interview_requested_at is not None and kept.escalated_at is not None
        assert s.get(TaskNode, completed).escalated_at is None


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_report_during_the_sweeps_write_back_does_not_deadlock(loop, engine, clock, monkeypatch):
    """PostgreSQL: a progress report arrives as the sweep writes its items back. The report
    holds its item and then wants the trail head; the sweep writes that item (its step day
    was unknown). Both commit: the sweep holds no trail head while it waits for an item (on
    the old code it did, and PostgreSQL aborted one of the two as a deadlock)."""
    red = loop.report(title="红灯事项")
    loop.coordinate(red.issue_number)
    loop.plan(red.issue_number, items=1, due_in=1)
    (red_item,) = loop.items(red.issue_number)
    reported = loop.report(title="进度正常事项")
    loop.coordinate(reported.issue_number)
    loop.plan(reported.issue_number, items=1, due_in=60)
    (reported_item,) = loop.items(reported.issue_number)
    _sweep(loop, board=False)
    clock.advance(days=3)  # the first item is red; the second is on time, its day unknown
    with unit_of_work(engine) as s:
        s.execute(update(TaskNode).where(TaskNode.id == reported_item).values(next_action_on=None))

    report = _report_during_write_back(
        monkeypatch, engine, lambda: loop.progress(reported.issue_number, reported_item, 30)
    )
    result = _sweep(loop, board=False)
    report.assert_done()
    assert result.newly_red == [red_item]
    with unit_of_work(engine) as s:
        item = s.get(TaskNode, reported_item)
        assert item.progress_percent == 30
        assert item.next_action_on == item.due_date + dt.timedelta(days=1)
        assert s.get(TaskNode, red_item).interview_requested_at is not None


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_report_during_the_first_sweep_after_a_policy_change_does_not_deadlock(
    loop, engine, clock, policy, monkeypatch
):
    """PostgreSQL: the policy changed; its first sweep (a full recompute, holding the sweep
    state's row) writes every item back as a report under the new policy arrives. The report
    marks the sweep state (the stored days may be another policy's) before it locks anything,
    as the sweep does, so it waits for the sweep instead of holding its item against it (on
    the old code PostgreSQL aborted one of the two as a deadlock). The sweep's new
    fingerprint is then kept: the report's days are that policy's."""
    r = loop.report(title="进度正常事项")
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=1, due_in=60)
    (item,) = loop.items(r.issue_number)
    _sweep(loop, board=False)
    with unit_of_work(engine) as s:  # its day unknown: the recompute writes the item back
        s.execute(update(TaskNode).where(TaskNode.id == item).values(next_action_on=None))
    changed = policy.model_copy(
        update={"progress": policy.progress.model_copy(update={"red_escalation_days": 0})}
    )
    changed_loop = Loop(engine, Context(policy=changed, clock=clock))

    report = _report_during_write_back(
        monkeypatch, engine, lambda: changed_loop.progress(r.issue_number, item, 30)
    )
    assert _sweep(changed_loop, board=False).full
    report.assert_done()
    with unit_of_work(engine) as s:
        assert s.get(TaskNode, item).progress_percent == 30
        assert s.get(SweepState, 1).policy_fingerprint == policy_fingerprint(changed)


def test_a_step_under_another_policy_marks_the_sweep_state_unknown(loop, engine, policy):
    """The other order of events: the sweep recorded one policy, a plan is filed under
    another. Its stored days are that other policy's, so the next sweep must recompute."""
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=1, due_in=5)
    _sweep(loop, board=False)
    other = policy.model_copy(
        update={"progress": policy.progress.model_copy(update={"red_escalation_days": 9})}
    )
    again = loop.report(title="另一事项")
    loop.coordinate(again.issue_number)
    Loop(engine, Context(policy=other, clock=loop.ctx.clock)).plan(again.issue_number, items=1)
    with unit_of_work(engine) as s:
        assert s.get(SweepState, 1).policy_fingerprint == ""
    assert _sweep(loop, board=False).full


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_sweeps_planner_settings_do_not_outlive_its_write_back(loop, engine, clock):
    """PostgreSQL: the write-back joins by index lookups (hash and merge joins off for that
    statement); the rest of the transaction plans with the settings it had before."""
    from sqlalchemy import text

    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=2, due_in=1)
    clock.advance(days=3)
    with unit_of_work(engine) as s:
        s.execute(text("SET LOCAL enable_mergejoin = off"))  # the caller's own choice stays
        assert dispatch_sweep(s, loop.ctx, board=False).newly_red
        assert s.scalar(text("SHOW enable_hashjoin")) == "on"
        assert s.scalar(text("SHOW enable_mergejoin")) == "off"


def test_the_write_back_joins_by_lookups_only_for_an_incremental_sweep_of_few_rows():
    from taskforce.loop.sweep import LOOKUP_ROWS_MAX, _by_lookups

    assert _by_lookups(full=False, rows=LOOKUP_ROWS_MAX)
    assert not _by_lookups(full=False, rows=LOOKUP_ROWS_MAX + 1)  # the planner chooses
    assert not _by_lookups(full=True, rows=10)  # a full recompute writes most items
