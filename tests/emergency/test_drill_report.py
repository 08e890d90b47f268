"""The drill report reads what happened from the emergency's events."""

from __future__ import annotations

import pytest

from taskforce.clock import local_minute
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency import service
from taskforce.emergency.drill import drill_report, render_markdown
from taskforce.emergency.forms import EmergencyIntake
from taskforce.emergency.models import Level


@pytest.fixture
def ctx(policy, clock):
    return Context(policy=policy, clock=clock)


def _open_drill(engine, ctx, key: str):
    with unit_of_work(engine) as s:
        return service.open_emergency(
            s,
            ctx,
            EmergencyIntake(level=Level.II, title="演练", working_group="wg:data"),
            source="drill",
            dedup_key=key,
            actor="drill",
            is_drill=True,
        )


def test_report_measures_page_ack_escalations_and_deadlines(engine, ctx, clock):
    window = ctx.policy.emergency.acknowledge_within_minutes
    limit = ctx.policy.emergency.escalation_repeat_limit
    e = _open_drill(engine, ctx, "d1")
    clock.advance(seconds=3)
    with unit_of_work(engine) as s:
        service.page_if_unpaged(s, ctx, e.emergency_id, actor="flow", reason="test")
    for _ in range(limit):  # the executive's pages run out: up to leadership
        clock.advance(minutes=window, seconds=1)
        with unit_of_work(engine) as s:
            service.escalate_due(s, ctx)
    clock.advance(minutes=1)
    with unit_of_work(engine) as s:
        service.acknowledge(s, ctx, e.emergency_id, actor="L1")
        service.resolve(s, ctx, e.emergency_id, actor="L1")
        report = drill_report(s, ctx, e.emergency_id, path="in process")
    assert report.is_drill
    assert report.seconds_to_first_page == 3
    assert report.seconds_to_acknowledge == 3 + limit * (window * 60 + 1) + 60
    assert report.acknowledged_in_time is False
    assert report.escalations == ["step_up: executive → leadership"]
    assert report.pages == limit + 1
    (solution,) = report.deadlines
    assert solution.name == "solution" and solution.met is True
    assert report.members_paged == 2 + 7  # E1 and E2 (on call), then the whole leadership group
    text = render_markdown(report)
    assert "time to first page | 3 秒 s" in text and "❌ 超时 missed" in text
    assert "| 时限 形成解决方案 Solution |" in text and "✅ 达标 met" in text
    # Local time to the minute (Asia/Shanghai), not UTC with microseconds.
    opened = local_minute(report.opened_at, ctx.policy.timezone)
    assert f"开始 Opened: {opened}（北京时间 Beijing time）" in text and "+00:00" not in text
    assert "（演练 drill）" in text


@pytest.mark.parametrize(("actor", "by_member"), [("E1", True), ("gateway:drill", False)])
def test_a_drill_acknowledged_by_a_system_is_not_a_met_acknowledgement(
    engine, ctx, clock, actor, by_member
):
    """The drill tests whether people answer the page. Its monitoring source may acknowledge
    over the gateway too (POST /v1/emergencies/drill/acknowledge); the report read that as
    「✅ 达标」 without saying who (an operator trial). It names who, and a system's
    acknowledgement meets nothing."""
    e = _open_drill(engine, ctx, "d2")
    with unit_of_work(engine) as s:
        service.page_if_unpaged(s, ctx, e.emergency_id, actor="flow", reason="test")
    clock.advance(minutes=1)
    with unit_of_work(engine) as s:
        service.acknowledge(s, ctx, e.emergency_id, actor=actor)
        report = drill_report(s, ctx, e.emergency_id, path="in process")
    text = render_markdown(report)
    assert report.acknowledged_by == actor
    if by_member:
        assert report.acknowledged_in_time is True and "✅ 达标 met（E1）" in text
    else:
        assert report.acknowledged_in_time is None and "达标" not in text.split("确认用时")[1][:80]
        assert "由监控系统确认（gateway:drill），无人员确认" in text
