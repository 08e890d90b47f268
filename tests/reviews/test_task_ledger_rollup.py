"""The task ledger's goal and sub-project rows show their action items' state.

Only action items are reported on; a goal or sub-project row used to show progress 0 and
"not done" even when every item below it was finished. The rule (content._roll_up): the
mean progress of the action items below, done when every one is done (completed with the
last of them), and the worst colour among the open ones (none when all are done).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy.orm import Session

from taskforce.loop.models import TaskLevel
from taskforce.policy import load_policy
from taskforce.policy.schema import Classification
from taskforce.reviews import content
from taskforce.reviews.periods import parse_period
from tests.reviews import factories as f

d = dt.date
START, DUE = d(2026, 9, 1), d(2026, 11, 20)
TODAY = d(2026, 11, 15)  # the ledger's colours are today's


def _tree(session: Session) -> None:
    issue = f.issue(session, reported_at=f.utc(2026, 8, 20), title="the issue")

    def node(title, level, under=None, due=DUE, **item):
        return f.action_item(session, issue, start=START, due=due, title=title, level=level,
                             under=under, **item)  # fmt: skip

    goal = node("goal", TaskLevel.goal)
    finished = node("finished sub-project", TaskLevel.sub_project, goal)
    node("item a", TaskLevel.action_item, finished, completed_at=f.utc(2026, 11, 3))
    node("item b", TaskLevel.action_item, finished, completed_at=f.utc(2026, 11, 9))
    running = node("running sub-project", TaskLevel.sub_project, goal)
    # On TODAY: c is past due (red), d 33.75 points behind the line (yellow).
    node("item c", TaskLevel.action_item, running, progress=40, due=d(2026, 11, 10))
    node("item d", TaskLevel.action_item, running, progress=60)
    halves = node("halves sub-project", TaskLevel.sub_project, goal)
    node("item e", TaskLevel.action_item, halves, progress=50)
    node("item f", TaskLevel.action_item, halves, progress=75)
    node("empty sub-project", TaskLevel.sub_project, goal)


def _rows(engine, period=None):
    with Session(engine) as s, s.begin():
        _tree(s)
    with engine.connect() as conn:
        frame = content.task_ledger(
            conn,
            Classification.internal,
            period,
            today=TODAY,
            progress=load_policy().progress,
            timezone="Asia/Shanghai",
        )
    return {r.task: r for r in frame.itertuples()}


def test_goal_and_sub_project_rows_roll_up_their_action_items(engine):
    rows = _rows(engine)
    finished = rows["finished sub-project"]
    # Done: no light (its last colour would read as a state it is no longer in).
    assert (finished.progress, finished.done, finished.colour) == (100, True, None)
    assert rows["item a"].colour is None and rows["item c"].colour == "red"
    assert rows["item d"].colour == "yellow"
    assert {r.plan_round for r in rows.values()} == {1}
    assert finished.completed == f.utc(2026, 11, 9)  # with its last item
    running = rows["running sub-project"]
    assert (running.progress, running.done, running.colour) == (50, False, "red")
    assert pd.isna(running.completed)
    assert rows["halves sub-project"].progress == 63  # 62.5, rounded half up
    goal = rows["goal"]  # (100 + 100 + 40 + 60 + 50 + 75) / 6 = 70.8
    assert (goal.progress, goal.done, goal.colour) == (71, False, "red")
    # A sub-project with no action item keeps its own (empty) state.
    empty = rows["empty sub-project"]
    assert (empty.progress, empty.done) == (0, False)
    assert "node_id" not in rows["goal"]._fields


def test_a_period_ledger_rolls_up_all_items_of_the_nodes_it_lists(engine):
    """November's ledger lists the nodes due in November (all of them here); the roll-up
    counts their items whatever the period."""
    rows = _rows(engine, parse_period("monthly", "2026-11"))
    assert rows["goal"].progress == 71
    assert rows["finished sub-project"].done
