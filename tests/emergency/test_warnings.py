"""Warnings: raised once per cause, handled, escalated when their deadline passes."""

from __future__ import annotations

import datetime as dt
import json

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
from taskforce.errors import DomainError
from taskforce.notify.models import OutboxMessage
from taskforce.policy import load_policy
from taskforce.registers.service import risk_colour
from taskforce.trail.models import TrailEntry


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


@pytest.mark.parametrize(
    ("colour", "audiences"),
    [
        ("yellow", ["executive"]),
        ("orange", ["executive", "leadership"]),  # the leadership group handles it (72 h)
        ("red", ["executive", "leadership"]),  # and forms the command (24 h)
    ],
)
def test_a_raised_warning_reaches_the_group_that_must_handle_it(engine, ctx, colour, audiences):
    """Orange and red warnings went to the executive group only: the leadership group, the
    only one that may handle them, heard of one when its deadline had passed."""
    _raise(engine, ctx, colour, f"k-route-{colour}")
    with unit_of_work(engine) as s:
        sent = s.scalars(
            select(OutboxMessage.audience)
            .where(OutboxMessage.event_kind == "warning_raised")
            .order_by(OutboxMessage.id)
        ).all()
    assert sent == audiences


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
        notices = s.execute(
            select(OutboxMessage.event_kind, OutboxMessage.audience).order_by(
                OutboxMessage.audience
            )
        ).all()
        (digest,) = s.scalars(select(TrailEntry).where(TrailEntry.action == "warnings.escalated"))
    # Each warning its trail entry; one message to each audience, naming all of them.
    assert entries == many
    assert notices == [("warnings_escalated", "director"), ("warnings_escalated", "leadership")]
    assert sorted(json.loads(digest.payload)["warnings"]) == sorted(made.values())
    with unit_of_work(engine) as s:
        assert escalate_overdue_warnings(s, ctx) == []


def test_warnings_escalated_together_share_one_message_per_colour_and_classification(
    engine, ctx, clock
):
    from taskforce.emergency.warnings import insert_warnings
    from taskforce.notify.render import render_message
    from taskforce.policy.schema import Classification

    def warn(n, colour, classification):
        return {
            "colour": colour,
            "source": "manual",
            "subject_type": "other",
            "subject_id": n,
            "title": f"机密事项 {n}" if classification == "secret" else f"事项 {n}",
            "classification": classification,
            "dedup_key": f"k-{n}",
        }

    with unit_of_work(engine) as s:
        insert_warnings(
            s,
            ctx,
            [warn(1, "orange", "secret"), warn(2, "orange", "secret"), warn(3, "orange", "internal"),
             warn(4, "orange", "internal"), warn(5, "yellow", "internal")],
        )  # fmt: skip
    clock.advance(hours=ctx.policy.warnings.orange.deadline_hours, seconds=1)  # 72 h: all late
    with unit_of_work(engine) as s:
        assert len(escalate_overdue_warnings(s, ctx)) == 5
    with unit_of_work(engine) as s:
        rows = s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        kinds = sorted((r.event_kind, r.classification.value) for r in rows)
        # The lone yellow one: its own message; two digests of two (orange secret, internal).
        assert kinds == sorted(
            [("warning_escalated", "internal")] * 2
            + [("warnings_escalated", "secret")] * 2
            + [("warnings_escalated", "internal")] * 2
        )
        limits = ctx.policy.notifications
        secret = next(r for r in rows if r.classification == Classification.secret)
        internal = next(
            r for r in rows
            if r.event_kind == "warnings_escalated" and r.classification == Classification.internal
        )  # fmt: skip
        uncleared = render_message(secret, clearance=Classification.internal, locale="zh-CN", limits=limits)  # fmt: skip
        cleared = render_message(internal, clearance=Classification.internal, locale="zh-CN", limits=limits)  # fmt: skip
        english = render_message(internal, clearance=Classification.internal, locale="en", limits=limits)  # fmt: skip
    assert uncleared.redacted and "机密事项" not in uncleared.title + uncleared.body
    assert cleared.title == "预警升级汇总：警示级预警 2 条"
    assert "2 条警示级预警未在 72 小时内处置" in cleared.body
    assert "事项 3" in cleared.body and "事项 4" in cleared.body
    assert english.title == "Warnings escalated (digest): 2 orange"


@pytest.mark.parametrize(
    ("colour", "actor", "may"),
    [
        ("yellow", "E1", True),  # the executive group handles yellow (§5)
        ("yellow", "L1", True),  # and the leadership group above it may
        ("yellow", "W6", False),  # a working group may not stop its own warning's escalation
        ("orange", "E1", False),  # orange: the leadership group steps in
        ("orange", "L1", True),
        ("red", "E1", False),  # red: the cross-department command, the leadership group's
        ("red", "L2", True),
    ],
)
def test_only_a_group_that_handles_the_colour_may_mark_it_handled(engine, ctx, colour, actor, may):
    wid = _raise(engine, ctx, colour, f"who-{colour}-{actor}")
    with unit_of_work(engine) as s:
        before = s.scalar(select(func.count()).select_from(TrailEntry))
    if may:
        with unit_of_work(engine) as s:
            assert handle_warning(s, ctx, wid, actor=actor).status == WarningStatus.handled
        return
    with pytest.raises(DomainError, match="actor: ") as refused, unit_of_work(engine) as s:
        handle_warning(s, ctx, wid, actor=actor)
    allowed = getattr(ctx.policy.warnings, colour).may_handle
    assert all(group in str(refused.value) for group in allowed)
    assert "L1" in str(refused.value)  # the members who may, listed
    with unit_of_work(engine) as s:
        assert s.get(EarlyWarning, wid).status == WarningStatus.open
        assert s.scalar(select(func.count()).select_from(TrailEntry)) == before


def test_a_member_not_cleared_for_a_warning_may_not_mark_it_handled(engine, ctx):
    """E3 is of the executive group, which handles yellow warnings, but cleared for internal
    material: a secret yellow warning's escalation is not E3's to stop. E1 (secret) may."""
    from taskforce.policy.schema import Classification

    with unit_of_work(engine) as s:
        wid = raise_warning(
            s,
            ctx,
            colour="yellow",
            source="manual",
            subject_type="issue",
            subject_id="TF-2026-00001",
            title="secret matter",
            dedup_key="k-secret",
            classification=Classification.secret,
        ).id
    with (
        pytest.raises(DomainError, match="E3 is cleared for internal") as refused,
        unit_of_work(engine) as s,
    ):
        handle_warning(s, ctx, wid, actor="E3")
    assert refused.value.field == "actor"
    with unit_of_work(engine) as s:
        assert s.get(EarlyWarning, wid).status == WarningStatus.open
        assert handle_warning(s, ctx, wid, actor="E1").status == WarningStatus.handled
