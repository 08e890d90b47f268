"""Boundary tests of the emergency level deadlines (SPEC §5; SPEC §1: deadlines in hours
are clock hours, and "within N h" (以内) includes its last instant). Hours come from the
policy object (emergency.levels), never from SPEC's text."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency import service
from taskforce.emergency.forms import EmergencyIntake
from taskforce.emergency.models import Emergency, EmergencyEvent, Level
from taskforce.notify.models import OutboxMessage
from taskforce.trail.models import TrailEntry


@pytest.fixture
def ctx(policy, clock):
    return Context(policy=policy, clock=clock)


def _missed(engine, ctx):
    with unit_of_work(engine) as s:
        return service.escalate_missed_deadlines(s, ctx)


@pytest.mark.parametrize(
    ("level", "deadline", "working_group"),
    [("I", "report_to_leadership", None), ("II", "solution", "wg:data")],
)
def test_level_deadline_stored_at_opening_plus_its_hours_missed_only_one_second_after(
    engine, ctx, clock, level, deadline, working_group
):
    """SPEC §5 (I: reported to the leadership group within 2 h; II: solution within 48 h) and
    §1 (clock hours; 以内 includes the last instant): the deadline is stored as opened_at plus
    emergency.levels.<level>.deadlines_hours.<name> exactly; a check at exactly that instant
    does not count it missed, a check one second later does, once. Opened at an instant with
    microseconds, so that nothing is rounded away. Nobody is paged: paging the leadership
    group would meet report_to_leadership."""
    clock.set(dt.datetime(2026, 3, 9, 1, 0, 0, 250_000, tzinfo=dt.UTC))
    hours = ctx.policy.emergency.levels[level].deadlines_hours[deadline]
    with unit_of_work(engine) as s:
        opened = service.open_emergency(
            s,
            ctx,
            EmergencyIntake(level=Level(level), title="数据平台中断", working_group=working_group),
            source="monitoring",
            dedup_key=f"boundary-{level}",
            actor="test",
        )
    with unit_of_work(engine) as s:
        emergency = s.scalar(select(Emergency).where(Emergency.public_id == opened.emergency_id))
        opened_at, deadlines = emergency.opened_at, dict(emergency.deadlines)
    assert opened_at == clock.now()
    due = dt.datetime.fromisoformat(deadlines[deadline])
    assert due == opened_at + dt.timedelta(hours=hours)

    clock.set(due)  # exactly N h after opening: still within the deadline
    assert _missed(engine, ctx) == []

    clock.set(due + dt.timedelta(seconds=1))  # N h + 1 s: missed
    assert _missed(engine, ctx) == [(opened.emergency_id, deadline)]
    assert _missed(engine, ctx) == []  # escalated once
    with unit_of_work(engine) as s:
        ((detail,),) = s.execute(
            select(EmergencyEvent.detail).where(EmergencyEvent.kind == "deadline_missed")
        ).all()
        trail = s.scalars(
            select(TrailEntry.action).where(TrailEntry.action == "emergency.deadline_missed")
        ).all()
        escalations = s.scalars(
            select(OutboxMessage.id).where(OutboxMessage.event_kind == "emergency_escalated")
        ).all()
    assert detail == {"name": deadline, "due_at": deadlines[deadline]}
    assert len(trail) == 1 and escalations
