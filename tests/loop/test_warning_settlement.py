"""A warning whose cause is gone is settled: the action item completed, the issue closed
(taskforce/emergency/warnings.py: settle_warnings)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency.models import EarlyWarning, WarningStatus
from taskforce.emergency.warnings import escalate_overdue_warnings
from taskforce.loop.sweep import dispatch_sweep
from taskforce.notify.models import OutboxMessage
from taskforce.trail.models import TrailEntry
from tests.loop.helpers import Loop


@pytest.fixture
def loop(engine, policy, clock):
    return Loop(engine, Context(policy=policy, clock=clock))


def _sweep(loop):
    with unit_of_work(loop.engine) as s:
        return dispatch_sweep(s, loop.ctx, board=False)


def _warnings(engine):
    with unit_of_work(engine) as s:
        return {
            w.subject_id: (w.status, w.handled_at)
            for w in s.scalars(select(EarlyWarning).order_by(EarlyWarning.id))
        }


def _settled(engine):
    with unit_of_work(engine) as s:
        return [
            (e.subject_id, json.loads(e.payload))
            for e in s.scalars(
                select(TrailEntry)
                .where(TrailEntry.action == "warning.settled")
                .order_by(TrailEntry.id)
            )
        ]


def _escalated_items(loop, clock, n=3):
    """An issue whose n items are red past the window: an orange warning each."""
    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=n, due_in=10)
    clock.advance(days=11)
    _sweep(loop)
    clock.advance(days=loop.ctx.policy.progress.red_escalation_days)
    assert len(_sweep(loop).escalated) == n
    return r.issue_number, loop.items(r.issue_number)


def test_completing_an_item_settles_its_warning_only_and_sends_nothing(loop, engine, clock):
    number, (first, second, third) = _escalated_items(loop, clock)
    loop.progress(number, first, 60)  # progress, not completion: still warned
    assert {s for s, _ in _warnings(engine).values()} == {WarningStatus.open}
    with unit_of_work(engine) as s:
        outbox = s.scalar(select(func.count()).select_from(OutboxMessage))
    loop.progress(number, first, 100)
    warnings = _warnings(engine)
    assert warnings[str(first)] == (WarningStatus.handled, clock.now())
    assert warnings[str(second)][0] == warnings[str(third)][0] == WarningStatus.open
    ((warning_id, payload),) = _settled(engine)
    assert payload == {
        "reason": "action item completed",
        "subject": f"task:{first}",
        "was": "open",
        "late": False,
    }
    with unit_of_work(engine) as s:
        assert s.get(EarlyWarning, int(warning_id)).subject_id == str(first)
        # Nobody has anything left to do: no message.
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == outbox


def test_settled_at_the_deadline_is_in_time_one_second_later_is_late(loop, engine, clock):
    number, (first, second) = _escalated_items(loop, clock, n=2)
    clock.advance(hours=loop.ctx.policy.warnings.orange.deadline_hours)  # the deadline itself
    loop.progress(number, first, 100)
    clock.advance(seconds=1)
    loop.progress(number, second, 100)
    assert [p["late"] for _, p in _settled(engine)] == [False, True]


def test_an_escalated_warning_is_settled_too(loop, engine, clock):
    number, (first,) = _escalated_items(loop, clock, n=1)
    clock.advance(hours=loop.ctx.policy.warnings.orange.deadline_hours, seconds=1)
    with unit_of_work(engine) as s:
        assert len(escalate_overdue_warnings(s, loop.ctx)) == 1
    loop.progress(number, first, 100)
    assert _warnings(engine)[str(first)][0] == WarningStatus.handled
    ((_, payload),) = _settled(engine)
    assert payload["was"] == "escalated" and payload["late"] is True


def test_closing_an_issue_settles_the_warnings_about_it(loop, engine, clock):
    r = loop.report()
    for _ in range(3):  # the third return raises a warning about the issue
        loop.coordinate(r.issue_number)
        loop.plan(r.issue_number, items=1)
        loop.finish_all(r.issue_number)
        loop.evaluate(r.issue_number, outcome="unsolved", satisfaction=40)
    assert _warnings(engine)[r.issue_number][0] == WarningStatus.open
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=1)
    loop.finish_all(r.issue_number)
    clock.advance(days=1)
    loop.evaluate(r.issue_number, outcome="solved", satisfaction=90)
    assert _warnings(engine)[r.issue_number] == (WarningStatus.handled, clock.now())
    ((_, payload),) = _settled(engine)
    assert payload["reason"] == "issue closed" and payload["subject"] == f"issue:{r.issue_number}"


def test_a_warning_about_another_subject_type_with_the_same_id_is_left_alone(loop, engine, clock):
    number, (item,) = _escalated_items(loop, clock, n=1)
    with unit_of_work(engine) as s:  # a risk numbered like the item
        from taskforce.emergency.warnings import raise_warning

        raise_warning(
            s,
            loop.ctx,
            colour="yellow",
            source="manual",
            subject_type="risk",
            subject_id=str(item),
            title="同号风险",
            dedup_key="risk-same-id",
        )
    loop.progress(number, item, 100)
    with unit_of_work(engine) as s:
        statuses = dict(s.execute(select(EarlyWarning.subject_type, EarlyWarning.status)).all())
    assert statuses == {"task": WarningStatus.handled, "risk": WarningStatus.open}


def test_a_warning_raised_by_hand_on_an_item_typed_with_leading_zeros_is_settled_too(
    loop, engine, clock
):
    from flows.warnings import WarningSubject, _checked_subject
    from taskforce.emergency.warnings import raise_warning

    r = loop.report()
    loop.coordinate(r.issue_number)
    loop.plan(r.issue_number, items=1)
    (item,) = loop.items(r.issue_number)
    with unit_of_work(engine) as s:
        subject, level = _checked_subject(s, WarningSubject.task, f"000{item}")
        assert (subject, level) == (str(item), "internal")  # the item's issue's level
        raise_warning(
            s,
            loop.ctx,
            colour="yellow",
            source="manual",
            subject_type="task",
            subject_id=subject,
            title="进度偏慢",
            dedup_key="manual-zeros",
        )
    loop.progress(r.issue_number, item, 100)
    assert _warnings(engine)[str(item)][0] == WarningStatus.handled
