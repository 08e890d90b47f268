"""Warnings: raised once per cause, handled, escalated when their deadline passes."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency.models import EarlyWarning, WarningStatus
from taskforce.emergency.warnings import (
    escalate_overdue_warnings,
    handle_warning,
    raise_warning,
)
from taskforce.notify.models import OutboxMessage
from taskforce.policy import load_policy
from taskforce.registers.service import risk_colour


@pytest.fixture
def ctx(policy, clock):
    return Context(policy=policy, clock=clock)


def _raise(engine, ctx, colour, key):
    with unit_of_work(engine) as s:
        w = raise_warning(
            s,
            ctx,
            colour=colour,
            source="manual",
            subject_type="issue",
            subject_id="TF-2026-00001",
            title=f"{colour} warning",
            dedup_key=key,
        )
        return w.id if w else None


@pytest.mark.parametrize("colour", ["yellow", "orange", "red"])
def test_missed_deadline_escalates_once(engine, ctx, clock, colour):
    hours = getattr(ctx.policy.warnings, colour).deadline_hours
    wid = _raise(engine, ctx, colour, f"k-{colour}")
    assert _raise(engine, ctx, colour, f"k-{colour}") is None  # one warning per cause
    clock.advance(hours=hours)
    with unit_of_work(engine) as s:
        assert escalate_overdue_warnings(s, ctx) == []  # the last instant is in time (以内)
    clock.advance(seconds=1)
    with unit_of_work(engine) as s:
        assert escalate_overdue_warnings(s, ctx) == [wid]
    with unit_of_work(engine) as s:
        assert escalate_overdue_warnings(s, ctx) == []
        w = s.get(EarlyWarning, wid)
        assert w.status == WarningStatus.escalated and w.escalated_at == clock.now()
        kinds = s.scalars(select(OutboxMessage.event_kind)).all()
    assert kinds.count("warning_escalated") == 2  # leadership and the director


def test_handled_warning_is_not_escalated(engine, ctx, clock):
    wid = _raise(engine, ctx, "yellow", "k")
    clock.advance(hours=1)
    with unit_of_work(engine) as s:
        handle_warning(s, ctx, wid, actor="E1", note="plan drafted")
    clock.advance(hours=100)
    with unit_of_work(engine) as s:
        assert escalate_overdue_warnings(s, ctx) == []
        w = s.get(EarlyWarning, wid)
        assert w.status == WarningStatus.handled


@given(st.integers(min_value=0, max_value=25))
def test_risk_colour_is_the_highest_threshold_reached(score):
    policy = load_policy()
    colour = risk_colour(score, policy)
    reached = [c for c, t in policy.risk.warning_thresholds.items() if score >= t]
    if not reached:
        assert colour is None
    else:
        assert policy.risk.warning_thresholds[colour] == max(
            policy.risk.warning_thresholds[c] for c in reached
        )


def test_warning_messages_state_the_deadline_in_the_office_s_local_time(engine, ctx, clock):
    from taskforce.clock import local_minute
    from taskforce.notify.render import render_message
    from taskforce.policy.schema import Classification

    hours = ctx.policy.warnings.yellow.deadline_hours
    _raise(engine, ctx, "yellow", "k-deadline")
    deadline = local_minute(clock.now() + dt.timedelta(hours=hours), ctx.policy.timezone)
    clock.advance(hours=hours, seconds=1)
    with unit_of_work(engine) as s:
        escalate_overdue_warnings(s, ctx)
        rows = s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        raised = next(r for r in rows if r.event_kind == "warning_raised")
        escalated = next(r for r in rows if r.event_kind == "warning_escalated")
        limits = ctx.policy.notifications
        zh = render_message(raised, clearance=Classification.secret, locale="zh-CN", limits=limits)
        en = render_message(raised, clearance=Classification.secret, locale="en", limits=limits)
        late = render_message(escalated, clearance=Classification.secret, locale="zh-CN", limits=limits)  # fmt: skip
    assert f"请于 {deadline} 前响应" in zh.body
    assert f"Respond by {deadline}." in en.body
    assert f"（{deadline}）" in late.body and "+00:00" not in late.body


def test_thirty_three_thousand_overdue_warnings_escalate_in_one_call(engine, ctx, clock):
    """A weekly sweep can raise ten thousand orange warnings; three such weeks unhandled are
    more ids than SQLite's default build binds in one statement (32,766). Set-based: 5-8 s
    here, where a trail entry and notice written one at a time took 85 s on SQLite."""
    from taskforce.emergency.warnings import insert_warnings
    from taskforce.trail.models import TrailEntry

    many = 33_000
    with unit_of_work(engine) as s:
        made = insert_warnings(
            s,
            ctx,
            [
                {
                    "colour": "orange",
                    "source": "sweep",
                    "subject_type": "task",
                    "subject_id": n,
                    "title": f"行动项 {n}",
                    "dedup_key": f"task:{n}:red-escalation",
                }
                for n in range(many)
            ],
        )
    assert len(made) == many
    clock.advance(hours=ctx.policy.warnings.orange.deadline_hours, seconds=1)
    with unit_of_work(engine) as s:
        assert sorted(escalate_overdue_warnings(s, ctx)) == sorted(made.values())
    with unit_of_work(engine) as s:
        statuses = s.execute(
            select(EarlyWarning.status, func.count()).group_by(EarlyWarning.status)
        ).all()
        assert statuses == [(WarningStatus.escalated, many)]
        entries = s.scalar(select(func.count()).where(TrailEntry.action == "warning.escalated"))
        notices = s.scalar(
            select(func.count()).where(OutboxMessage.event_kind == "warning_escalated")
        )
    assert entries == many and notices == 2 * many  # leadership and the director
    with unit_of_work(engine) as s:
        assert escalate_overdue_warnings(s, ctx) == []
