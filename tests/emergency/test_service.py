"""The emergency core without Prefect: intake, paging, escalation on the clock, answers,
the reserve and the follow-up issue."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from taskforce import trail
from taskforce.budget.models import FiscalYear, LedgerEntry, LedgerKind
from taskforce.clock import local_minute
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency import service
from taskforce.emergency.forms import EmergencyIntake, ReserveDrawForm
from taskforce.emergency.models import Emergency, EmergencyEvent, EmergencyStatus, Level
from taskforce.errors import DomainError, IllegalTransition, NotFound
from taskforce.loop.models import Issue
from taskforce.notify.models import OutboxMessage
from taskforce.policy.schema import Classification, GroupKind
from taskforce.trail.models import TrailEntry
from tests.locks import until_waiting_for_a_lock

LEADERSHIP = [f"member-L{i}" for i in range(1, 8)]


@pytest.fixture
def ctx(policy, clock):
    return Context(policy=policy, clock=clock)


def _open(
    engine,
    ctx,
    level="III",
    key="k1",
    source="monitoring",
    wg="wg:data",
    classification=Classification.internal,
    title="数据平台中断",
    **kw,
):
    with unit_of_work(engine) as s:
        return service.open_emergency(
            s,
            ctx,
            EmergencyIntake(
                level=Level(level),
                title=title,
                working_group=wg,
                classification=classification,
            ),
            source=source,
            dedup_key=key,
            actor="test",
            **kw,
        )


def _page(engine, ctx, public_id):
    with unit_of_work(engine) as s:
        return service.page_if_unpaged(s, ctx, public_id, actor="test", reason="test")


def _escalate(engine, ctx):
    with unit_of_work(engine) as s:
        return service.escalate_due(s, ctx)


def _audiences(engine, public_id) -> list[str]:
    with unit_of_work(engine) as s:
        return list(
            s.scalars(
                select(OutboxMessage.audience)
                .where(OutboxMessage.subject_id == public_id)
                .where(OutboxMessage.event_kind == "emergency_page")
                .order_by(OutboxMessage.id)
            )
        )


def _count(engine, model, *where) -> int:
    with unit_of_work(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


@pytest.mark.parametrize(
    ("level", "leading", "deadlines"),
    [
        ("I", "leadership", {"report_to_leadership": 2, "command_formed": 24}),
        ("II", "executive", {"solution": 48}),
        ("III", "working_group", {}),
    ],
)
def test_level_decides_leading_group_and_deadlines(engine, ctx, level, leading, deadlines):
    result = _open(engine, ctx, level=level)
    assert result.created and result.status == "pending_dispatch"
    with unit_of_work(engine) as s:
        e = service.get_emergency(s, result.emergency_id)
        assert e.leading_group == leading
        assert e.escalation_step == ctx.policy.emergency.escalation_chain.index(leading)
        assert {k: dt.datetime.fromisoformat(v) for k, v in e.deadlines.items()} == {
            k: ctx.now() + dt.timedelta(hours=h) for k, h in deadlines.items()
        }


def test_first_page_goes_to_the_leading_groups_on_call(engine, ctx):
    three = _open(engine, ctx, level="III", key="a")
    two = _open(engine, ctx, level="II", key="b")
    one = _open(engine, ctx, level="I", key="c")
    assert _page(engine, ctx, three.emergency_id) == ["W3"]
    assert _page(engine, ctx, two.emergency_id) == ["E1", "E2"]
    # The leadership group has no on-call member: all of it is paged.
    assert _page(engine, ctx, one.emergency_id) == [f"L{i}" for i in range(1, 8)]
    assert _audiences(engine, one.emergency_id) == LEADERSHIP
    with unit_of_work(engine) as s:
        row = s.scalars(
            select(OutboxMessage).where(
                OutboxMessage.subject_id == three.emergency_id,
                OutboxMessage.event_kind == "emergency_page",
            )
        ).one()
        assert row.context["member"] == "W3"
        assert row.priority == ctx.policy.emergency.page_priority
    # Paging again pages nobody.
    assert _page(engine, ctx, three.emergency_id) == []
    assert _audiences(engine, three.emergency_id) == ["member-W3"]


def test_repeat_attaches_and_pages_nobody(engine, ctx):
    first = _open(engine, ctx)
    _page(engine, ctx, first.emergency_id)
    again = _open(engine, ctx)
    assert not again.created and again.emergency_id == first.emergency_id
    assert _count(engine, Emergency) == 1
    with unit_of_work(engine) as s:
        e = service.get_emergency(s, first.emergency_id)
        assert e.repeats == 1
    assert _count(engine, EmergencyEvent, EmergencyEvent.kind == "repeat") == 1
    assert _audiences(engine, first.emergency_id) == ["member-W3"]
    # The same key from another source is another emergency.
    assert _open(engine, ctx, source="drill").created


def test_a_repeat_at_a_more_severe_level_raises_the_emergency_and_pages_its_new_lead(engine, ctx):
    """A disk alert (III, the data working group) repeated as a level-I crisis was counted
    as a repeat and paged nobody: the leadership group never heard of it."""
    first = _open(engine, ctx, level="III")
    _page(engine, ctx, first.emergency_id)
    with unit_of_work(engine) as s:
        service.acknowledge(s, ctx, first.emergency_id, actor="W3")
    ctx.clock.advance(minutes=30)
    with unit_of_work(engine) as s:
        raised = service.open_emergency(
            s,
            ctx,
            EmergencyIntake(level=Level.I, title="数据中心全部断电", working_group="wg:data"),
            source="monitoring",
            dedup_key="k1",
            actor="test",
        )
    assert not raised.created and raised.emergency_id == first.emergency_id
    assert raised.level == Level.I and raised.status == "acknowledged"
    assert raised.raised_from == Level.III
    # The page and the escalation notice are handed over to be sent at once, not left for
    # the next delivery run (a minute away); not part of what the result shows.
    with unit_of_work(engine) as s:
        urgent = s.scalars(
            select(TrailEntry.action).where(TrailEntry.id.in_(raised.send_now))
        ).all()
    assert sorted(urgent) == ["emergency.level_raised", "emergency.paged"]
    assert "send_now" not in raised.model_dump()
    with unit_of_work(engine) as s:
        e = service.get_emergency(s, first.emergency_id)
        # The first response (the working group's acknowledgement) stays: the KPIs measure it.
        assert (e.level, e.leading_group) == (Level.I, "leadership")
        assert e.acknowledged_at == ctx.now() - dt.timedelta(minutes=30)
        assert e.escalation_step == ctx.policy.emergency.escalation_chain.index("leadership")
        assert e.repeats == 1 and e.title == "数据平台中断"  # the first report's title stays
        assert set(e.deadlines) == {"report_to_leadership", "command_formed"}
        assert dt.datetime.fromisoformat(e.deadlines["report_to_leadership"]) == (
            ctx.now() + dt.timedelta(hours=2)
        )
        event = s.scalars(select(EmergencyEvent).where(EmergencyEvent.kind == "level_raised")).one()
        assert (event.detail["from"], event.detail["to"]) == ("III", "I")
        assert event.detail["title"] == "数据中心全部断电"
        actions = s.scalars(select(TrailEntry.action).order_by(TrailEntry.id)).all()
        assert "emergency.level_raised" in actions and trail.verify(s).ok
        escalated = s.scalars(
            select(OutboxMessage.audience).where(OutboxMessage.event_kind == "emergency_escalated")
        ).all()
        assert set(escalated) == set(ctx.policy.notifications.routing["emergency_escalated"])
    # The leadership group is paged now (the working group's page stays on the record).
    assert _audiences(engine, first.emergency_id) == ["member-W3", *LEADERSHIP]


@pytest.mark.parametrize("level", ["III", "II"])
def test_a_repeat_at_the_same_or_a_milder_level_is_a_repeat(engine, ctx, level):
    first = _open(engine, ctx, level="II", wg="wg:data")
    _page(engine, ctx, first.emergency_id)
    again = _open(engine, ctx, level=level)
    assert not again.created and again.level == Level.II
    assert again.raised_from is None and again.send_now == ()
    with unit_of_work(engine) as s:
        e = service.get_emergency(s, first.emergency_id)
        assert (e.level, e.leading_group, e.repeats) == (Level.II, "executive", 1)
    assert _count(engine, EmergencyEvent, EmergencyEvent.kind == "level_raised") == 0
    assert _audiences(engine, first.emergency_id) == ["member-E1", "member-E2"]


def test_a_raise_on_an_emergency_escalated_past_its_new_lead_pages_there_again(engine, ctx):
    """Escalated along the chain to the leadership group already, then reported as level I:
    the step stays, and the page takes the next number (no clash with the earlier pages)."""
    first = _open(engine, ctx, level="III")
    with unit_of_work(engine) as s:
        e = service.get_emergency(s, first.emergency_id, lock=True)
        e.escalation_step = ctx.policy.emergency.escalation_chain.index("leadership")
    _page(engine, ctx, first.emergency_id)
    raised = _open(engine, ctx, level="II")  # led by the executive group, a step below
    assert raised.level == Level.II
    with unit_of_work(engine) as s:
        e = service.get_emergency(s, first.emergency_id)
        assert e.escalation_step == 2 and e.pages_at_step == 2
        assert e.leading_group == "executive"
        notice = s.scalars(
            select(OutboxMessage).where(OutboxMessage.event_kind == "emergency_escalated")
        ).first()
        assert notice.context["to"] == "leadership"  # the notice names whom the page goes to
    assert _audiences(engine, first.emergency_id) == LEADERSHIP * 2


def test_a_raise_to_a_group_nobody_of_which_is_cleared_names_the_group_it_pages(engine, ctx):
    """The executive group cleared for internal material only (here): an internal level III
    raised to a secret level II is paged at the leadership group, and its notice says so,
    not "executive" (a review)."""
    from sqlalchemy import update

    from taskforce.org.models import Member

    with unit_of_work(engine) as s:
        s.execute(update(Member).where(Member.code.in_(["E1", "E2"])).values(clearance="internal"))
    first = _open(engine, ctx, level="III")
    _page(engine, ctx, first.emergency_id)
    _open(engine, ctx, level="II", classification=Classification.secret)
    with unit_of_work(engine) as s:
        notice = s.scalars(
            select(OutboxMessage).where(OutboxMessage.event_kind == "emergency_escalated")
        ).first()
        assert notice.context["to"] == "leadership"
    assert _audiences(engine, first.emergency_id)[1:] == LEADERSHIP


def test_resolution_frees_the_dedup_key(engine, ctx):
    first = _open(engine, ctx)
    with unit_of_work(engine) as s:
        service.resolve(s, ctx, first.emergency_id, actor="W3")
    second = _open(engine, ctx)
    assert second.created and second.emergency_id != first.emergency_id


@pytest.mark.parametrize(
    ("wg", "message"),
    [(None, "working_group: level III is led by a working group"), ("wg:nope", "unknown working")],
)
def test_bad_intake_is_refused_and_writes_nothing(engine, ctx, wg, message):
    with pytest.raises(DomainError, match=message):
        _open(engine, ctx, wg=wg)
    assert _count(engine, Emergency) == 0
    assert _count(engine, TrailEntry) == 0


def test_escalation_follows_the_clock_along_the_chain(engine, ctx, clock):
    """Repeat limit 3 and 15 minutes (config): W3 ×3, then executive ×3, then leadership ×3."""
    window = ctx.policy.emergency.acknowledge_within_minutes
    limit = ctx.policy.emergency.escalation_repeat_limit
    e = _open(engine, ctx, level="III")
    _page(engine, ctx, e.emergency_id)

    clock.advance(minutes=window)
    assert _escalate(engine, ctx) == []  # the last instant of the window is still in time (以内)
    clock.advance(seconds=1)
    (first,) = _escalate(engine, ctx)
    assert (first.action, first.step, first.page_number, first.paged) == (
        "repage",
        "working_group",
        2,
        ["W3"],
    )
    assert _escalate(engine, ctx) == []  # same instant: nothing more

    actions = []
    for _ in range(2 * limit + 2):
        clock.advance(minutes=window, seconds=1)
        actions += [(x.action, x.step, x.page_number) for x in _escalate(engine, ctx)]
    assert actions == [
        ("repage", "working_group", 3),
        ("step_up", "executive", 1),
        ("repage", "executive", 2),
        ("repage", "executive", 3),
        ("step_up", "leadership", 1),
        ("repage", "leadership", 2),
        ("repage", "leadership", 3),
        ("exhausted", "leadership", 3),
    ]
    clock.advance(hours=24)
    assert _escalate(engine, ctx) == []
    pages = _audiences(engine, e.emergency_id)
    assert pages.count("member-W3") == limit
    assert pages.count("member-E1") == limit
    assert pages.count("member-L1") == limit
    with unit_of_work(engine) as s:
        assert trail.verify(s).ok
        escalated = s.scalars(
            select(OutboxMessage.audience).where(OutboxMessage.event_kind == "emergency_escalated")
        ).all()
    assert set(escalated) == {"leadership", "director"}
    bodies = _escalation_bodies(engine, ctx)
    assert bodies == [
        "专项工作组经3次呼叫未确认，已升级至执行小组，请立即确认。",
        "执行小组经3次呼叫未确认，已升级至领导小组，请立即确认。",
        "已逐级呼叫至领导小组，仍无人确认；系统不再自动呼叫，请执行办公室立即电话联系。",
    ]


def _escalation_bodies(engine, ctx, locale="zh-CN") -> list[str]:
    """The escalation notices to the leadership group, as its members read them (an operator
    trial read 「已升级至leadership（page not acknowledged）。step_up: executive → leadership」)."""
    from taskforce.notify.delivery import MessageSnapshot
    from taskforce.notify.render import render_message

    with unit_of_work(engine) as s:
        rows = [
            MessageSnapshot.of(m)
            for m in s.scalars(
                select(OutboxMessage)
                .where(
                    OutboxMessage.event_kind == "emergency_escalated",
                    OutboxMessage.audience == "leadership",
                )
                .order_by(OutboxMessage.id)
            )
        ]
    return [
        render_message(
            m, clearance=Classification.secret, locale=locale, limits=ctx.policy.notifications
        ).body
        for m in rows
    ]


def test_level_one_starts_at_the_top_and_only_repeats(engine, ctx, clock):
    e = _open(engine, ctx, level="I", wg=None)
    _page(engine, ctx, e.emergency_id)
    seen = []
    for _ in range(4):
        clock.advance(minutes=ctx.policy.emergency.acknowledge_within_minutes, seconds=1)
        seen += [x.action for x in _escalate(engine, ctx)]
    assert seen == ["repage", "repage", "exhausted"]


def test_acknowledgement_stops_escalation(engine, ctx, clock):
    e = _open(engine, ctx, level="II")
    _page(engine, ctx, e.emergency_id)
    clock.advance(minutes=5)
    with unit_of_work(engine) as s:
        st = service.acknowledge(s, ctx, e.emergency_id, actor="E1")
        again = service.acknowledge(s, ctx, e.emergency_id, actor="E2")
    assert st.status == again.status == EmergencyStatus.acknowledged
    clock.advance(hours=5)
    assert _escalate(engine, ctx) == []
    assert _count(engine, EmergencyEvent, EmergencyEvent.kind == "acknowledge") == 1


def test_webhook_actions_act_on_the_open_dedup_key(engine, ctx):
    e = _open(engine, ctx, key="fp-1")
    with unit_of_work(engine) as s:
        st = service.act_on_dedup(
            s, ctx, source="monitoring", dedup_key="fp-1", action="acknowledge", actor="am"
        )
    assert st.public_id == e.emergency_id and st.status == EmergencyStatus.acknowledged
    with unit_of_work(engine) as s:
        service.act_on_dedup(
            s, ctx, source="monitoring", dedup_key="fp-1", action="resolve", actor="am"
        )
    with (
        pytest.raises(DomainError, match="dedup_key: no open emergency"),
        unit_of_work(engine) as s,
    ):
        service.act_on_dedup(
            s, ctx, source="monitoring", dedup_key="fp-1", action="resolve", actor="am"
        )


def _fiscal_year(engine, year=2026, total_yuan=100_000_000):
    with unit_of_work(engine) as s:
        total = total_yuan * 100
        s.add(FiscalYear(year=year, total_fen=total, reserve_fen=total // 10))


APPROVERS = {GroupKind.executive: "E1", GroupKind.leadership: "L1"}


def _draw(engine, ctx, public_id, amount, by=GroupKind.executive, key="draw-1"):
    with unit_of_work(engine) as s:
        return service.request_reserve_draw(
            s,
            ctx,
            public_id,
            ReserveDrawForm(amount=Decimal(amount), approved_by=by, approver=APPROVERS[by]),
            actor="E1",
            key=key,
        )


def test_reserve_draw_within_authority(engine, ctx):
    _fiscal_year(engine)  # reserve 10,000,000.00
    e = _open(engine, ctx, level="II")
    exec_max = ctx.policy.authority.executive_approval_max
    detail = _draw(engine, ctx, e.emergency_id, exec_max)  # exactly the maximum: executive may
    assert detail["approved_by"] == "executive"
    assert _draw(engine, ctx, e.emergency_id, exec_max) == detail  # replay: same result
    with pytest.raises(DomainError, match="approved_by: executive may not approve"):
        _draw(engine, ctx, e.emergency_id, exec_max + Decimal("0.01"), key="draw-2")
    over = _draw(engine, ctx, e.emergency_id, "5000000.00", by=GroupKind.leadership, key="d3")
    assert over["remaining_fen"] == 0
    with pytest.raises(DomainError, match="amount: .* exceeds the reserve left"):
        _draw(engine, ctx, e.emergency_id, "0.01", key="draw-4")
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(LedgerEntry.kind, LedgerEntry.emergency_id, LedgerEntry.amount_fen)
        ).all()
        em = service.get_emergency(s, e.emergency_id)
        actions = s.scalars(
            select(TrailEntry.action).where(TrailEntry.action == "emergency.reserve_drawn")
        ).all()
    assert [(k, i) for k, i, _ in rows] == [(LedgerKind.reserve_draw, em.id)] * 2
    assert sum(a for *_, a in rows) == 1_000_000_000
    assert len(actions) == 2


@pytest.mark.parametrize(
    ("approver", "by", "refusal"),
    [
        ("E1", GroupKind.executive, None),
        ("L1", GroupKind.leadership, None),
        # A group typed on a form approves nothing: the approver must be one of its members.
        ("E1", GroupKind.leadership, "E1 is not a member of the leadership group"),
        ("W4", GroupKind.executive, "W4 is not a member of the executive group"),
        ("nobody", GroupKind.executive, "no active member 'nobody'"),
        # A member of the group, but not cleared for the secret emergency.
        ("E3", GroupKind.executive, "E3 is cleared for internal material"),
    ],
)
def test_a_reserve_draw_is_approved_by_a_cleared_member_of_the_approving_group(
    engine, ctx, approver, by, refusal
):
    _fiscal_year(engine)
    e = _open(engine, ctx, level="II", classification=Classification.secret)
    form = ReserveDrawForm(amount=Decimal("1000.00"), approved_by=by, approver=approver)

    def draw():
        with unit_of_work(engine) as s:
            return service.request_reserve_draw(s, ctx, e.emergency_id, form, actor="E1", key="d")

    if refusal is None:
        assert draw()["approver"] == approver
        return
    with pytest.raises((DomainError, NotFound), match=refusal) as refused:
        draw()
    assert refused.value.field == "approver"
    if approver != "nobody":
        assert "L1" in refused.value.allowed or "E1" in refused.value.allowed
        assert "E3" not in refused.value.allowed  # not cleared: not offered
    with unit_of_work(engine) as s:  # nothing written
        assert s.scalar(select(func.count(LedgerEntry.id))) == 0


def test_reserve_draw_counts_on_the_reserve_budget_line(engine, ctx):
    from taskforce.budget.models import BudgetLine

    _fiscal_year(engine)
    with unit_of_work(engine) as s:
        s.add(
            BudgetLine(
                code="reserve-2026",
                fiscal_year=2026,
                is_reserve=True,
                purpose="应急预留",
                output_target="-",
                benefit_target="-",
                amount_fen=300_000_00,
                created_at=ctx.now(),
            )
        )
    e = _open(engine, ctx, level="II")
    assert _draw(engine, ctx, e.emergency_id, "300000.00")["remaining_fen"] == 0
    with pytest.raises(DomainError, match="exceeds the reserve left"):
        _draw(engine, ctx, e.emergency_id, "0.01", key="more")
    with unit_of_work(engine) as s:
        line_ids = s.scalars(select(LedgerEntry.line_id)).all()
        reserve = s.scalar(select(BudgetLine.id).where(BudgetLine.is_reserve.is_(True)))
    assert line_ids == [reserve]


def test_reserve_draw_refused_for_drills_and_resolved_emergencies(engine, ctx):
    _fiscal_year(engine)
    drill = _open(engine, ctx, source="drill", is_drill=True)
    with pytest.raises(DomainError, match="drill"):
        _draw(engine, ctx, drill.emergency_id, "100")
    e = _open(engine, ctx, key="other")
    with unit_of_work(engine) as s:
        service.resolve(s, ctx, e.emergency_id, actor="W3")
    with pytest.raises(IllegalTransition, match="resolved"):
        _draw(engine, ctx, e.emergency_id, "100", key="late")
    assert _count(engine, LedgerEntry) == 0


def test_reserve_draw_needs_a_fiscal_year(engine, ctx):
    e = _open(engine, ctx)
    with pytest.raises(DomainError, match="fiscal_year"):
        _draw(engine, ctx, e.emergency_id, "100")
    assert _count(engine, LedgerEntry) == 0


def test_close_opens_one_follow_up_issue(engine, ctx):
    e = _open(engine, ctx, level="I")
    with (
        pytest.raises(IllegalTransition, match="resolve it before closing"),
        unit_of_work(engine) as s,
    ):
        service.close_with_follow_up(s, ctx, e.emergency_id, actor="E1")
    with unit_of_work(engine) as s:
        service.resolve(s, ctx, e.emergency_id, actor="E1")
    with unit_of_work(engine) as s:
        st = service.close_with_follow_up(s, ctx, e.emergency_id, actor="E1")
        again = service.close_with_follow_up(s, ctx, e.emergency_id, actor="E1")
    assert st.status == EmergencyStatus.closed and again.follow_up_issue_id == st.follow_up_issue_id
    with unit_of_work(engine) as s:
        issue = s.get(Issue, st.follow_up_issue_id)
        assert (issue.origin, issue.origin_ref) == ("emergency", e.emergency_id)
        assert issue.category == ctx.policy.emergency.follow_up.category
        # In the office's words and local time (zh-CN, Asia/Shanghai), not English and UTC.
        assert issue.title.startswith("应急I级事件后续处置：")
        opened = local_minute(ctx.now(), ctx.policy.timezone)
        assert issue.description.startswith(f"应急事件 {e.emergency_id}（I级，")
        assert f"{opened} 发生" in issue.description and "处置完毕。" in issue.description
        assert "Follow-up" not in issue.description and "+00:00" not in issue.description
        assert trail.verify(s).ok
    assert _count(engine, Issue) == 1


def test_a_follow_up_of_an_emergency_opened_by_form_names_its_source_in_words(engine, ctx):
    """「来源 operator」: the form's source code in the follow-up issue's description."""
    e = _open(engine, ctx, level="II", source="operator")
    with unit_of_work(engine) as s:
        service.resolve(s, ctx, e.emergency_id, actor="E1")
        st = service.close_with_follow_up(s, ctx, e.emergency_id, actor="E1")
        description = s.get(Issue, st.follow_up_issue_id).description
    assert "来源 执行办公室表单" in description and "operator" not in description


def test_a_follow_up_of_a_multi_line_alert_title_is_one_line(engine, ctx):
    """A monitoring system may title an alert over lines (and with controls); the follow-up
    issue's form takes a title of one visible line only (taskforce/text.py)."""
    e = _open(engine, ctx, level="II", title="数据平台中断\n节点 3\t\u202e宕机")
    with unit_of_work(engine) as s:
        service.resolve(s, ctx, e.emergency_id, actor="E1")
        st = service.close_with_follow_up(s, ctx, e.emergency_id, actor="E1")
        issue = s.get(Issue, st.follow_up_issue_id)
    assert issue.title.endswith("数据平台中断 节点 3 宕机")
    assert "\n" not in issue.title and "\u202e" not in issue.description


def test_a_drill_is_marked_everywhere_and_closes_without_an_issue(engine, ctx):
    e = _open(engine, ctx, level="II", source="drill", is_drill=True)
    _page(engine, ctx, e.emergency_id)
    with unit_of_work(engine) as s:
        service.resolve(s, ctx, e.emergency_id, actor="drill")
        st = service.close_with_follow_up(s, ctx, e.emergency_id, actor="drill")
        assert st.is_drill and st.follow_up_issue_id is None
        assert all(s.scalars(select(OutboxMessage.is_drill)))
    assert _count(engine, Issue) == 0


def test_dispatch_marks_or_pages_directly(engine, ctx):
    from taskforce.emergency.dispatch import dispatch, dispatch_pending

    def unreachable(public_id: str) -> str:
        raise ConnectionError("connection refused")

    e = _open(engine, ctx, level="I", wg=None)
    out = dispatch(engine, ctx, e.emergency_id, unreachable, actor="gateway")
    assert not out.dispatched and len(out.paged) == 7
    with unit_of_work(engine) as s:
        assert service.pending_dispatch(s) == [e.emergency_id]
    # A second failure pages nobody again.
    assert dispatch_pending(engine, ctx, unreachable)[0].paged == ()
    failures = _count(engine, TrailEntry, TrailEntry.action == "emergency.dispatch_failed")
    assert failures == 1  # only the failure that paged directly is on the trail
    done = dispatch_pending(engine, ctx, lambda public_id: f"run-{public_id}")
    assert [o.dispatched for o in done] == [True]
    with unit_of_work(engine) as s:
        st = service.state(s, e.emergency_id)
        assert st.status == EmergencyStatus.dispatched and st.flow_run_id.startswith("run-")
        assert service.pending_dispatch(s) == []
    assert _audiences(engine, e.emergency_id) == LEADERSHIP


def test_a_failing_engine_is_tried_twice_a_round_and_the_rest_wait_paged(engine, ctx):
    """A slow or absent Prefect answers each call only at its timeout: after two failures in
    a row the round stops trying, so the sweep is not held by a burst. Every emergency is
    paged all the same, and the next round dispatches them."""
    from taskforce.emergency.dispatch import dispatch_pending

    calls = []

    def timing_out(public_id: str) -> str:
        calls.append(public_id)
        raise TimeoutError("read timed out")

    ids = [_open(engine, ctx, level="II", key=f"k{i}").emergency_id for i in range(4)]
    outcomes = dispatch_pending(engine, ctx, timing_out)
    assert calls == ids[:2] and not any(o.dispatched for o in outcomes)
    assert [o.error.startswith("not tried") for o in outcomes] == [False, False, True, True]
    assert all(_audiences(engine, public_id) == ["member-E1", "member-E2"] for public_id in ids)
    done = dispatch_pending(engine, ctx, lambda public_id: f"run-{public_id}")
    assert [o.public_id for o in done if o.dispatched] == ids


def test_one_emergency_failing_on_its_own_does_not_hold_back_the_others(engine, ctx):
    """The oldest is tried first in every round: one that fails for a reason of its own
    must not leave the rest undispatched round after round (a review)."""
    from taskforce.emergency.dispatch import dispatch_pending

    ids = [_open(engine, ctx, level="II", key=f"k{i}").emergency_id for i in range(3)]

    def all_but_the_first(public_id: str) -> str:
        if public_id == ids[0]:
            raise ValueError("this one's parameters are refused")
        return f"run-{public_id}"

    outcomes = dispatch_pending(engine, ctx, all_but_the_first)
    assert [o.dispatched for o in outcomes] == [False, True, True]


def test_a_sweep_starts_runs_only_for_its_time_the_rest_wait_for_the_next(engine, ctx, monkeypatch):
    """A storm's run starts took 2.3 s each on a loaded Prefect: a sweep starting hundreds
    ran for minutes and held back the next sweeps' escalations (a storm trial). A sweep
    starts runs for emergency.sweep_dispatch_seconds (here 15; each start takes 10 on the
    clock below, the process's monotonic clock): the first start is always tried, and one
    begun before the time is up finishes; the rest stay pending, paged, for the next."""
    import types

    import taskforce.emergency.dispatch as dispatch_module
    from taskforce.emergency.dispatch import dispatch_pending

    emergency = ctx.policy.emergency.model_copy(update={"sweep_dispatch_seconds": 15})
    ctx = Context(policy=ctx.policy.model_copy(update={"emergency": emergency}), clock=ctx.clock)
    now = [0.0]
    monkeypatch.setattr(dispatch_module, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    ids = [_open(engine, ctx, level="II", key=f"k{i}").emergency_id for i in range(4)]

    def slow(public_id: str) -> str:
        now[0] += 10
        return f"run-{public_id}"

    first = dispatch_pending(engine, ctx, slow)
    assert [o.dispatched for o in first] == [True, True, False, False]  # started at 0 and 10
    assert first[2].error == "not tried: this round's time for run starts is spent"
    assert all(o.paged for o in first)  # paged all the same
    with unit_of_work(engine) as s:
        assert service.pending_dispatch(s) == ids[2:]
    second = dispatch_pending(engine, ctx, slow)
    assert [(o.public_id, o.dispatched) for o in second] == [(ids[2], True), (ids[3], True)]
    assert all(not o.paged for o in second)  # nobody paged twice


def test_a_resolved_emergency_is_closed_by_the_sweep_not_given_a_flow_run(engine, ctx):
    """Resolved (by its monitoring system) before any run was started: nothing is left for a
    run to wait for. The sweep closes it with its follow-up issue instead of starting one."""
    from taskforce.emergency.dispatch import dispatch_pending

    e = _open(engine, ctx, level="II")
    with unit_of_work(engine) as s:
        service.resolve(s, ctx, e.emergency_id, actor="gateway:monitoring")
        assert service.pending_dispatch(s) == []

    def never(public_id: str) -> str:
        raise AssertionError(f"a flow run was started for {public_id}")

    assert dispatch_pending(engine, ctx, never) == []
    with unit_of_work(engine) as s:
        assert service.close_resolved(s, ctx, actor="sweep") == [e.emergency_id]
        assert service.state(s, e.emergency_id).status == EmergencyStatus.closed


def test_sweep_pages_an_emergency_no_flow_run_paged(engine, ctx, clock):
    """Dispatched, but no worker ran the response: the sweep pages after the grace period."""
    e = _open(engine, ctx, level="II")
    with unit_of_work(engine) as s:
        service.mark_dispatched(s, ctx, e.emergency_id, "run-1", actor="gateway")
    clock.advance(seconds=ctx.policy.emergency.unpaged_grace_seconds)
    assert _escalate(engine, ctx) == []
    clock.advance(seconds=1)
    (first,) = _escalate(engine, ctx)
    assert (first.action, first.paged) == ("first_page", ["E1", "E2"])
    assert _escalate(engine, ctx) == []
    assert _audiences(engine, e.emergency_id) == ["member-E1", "member-E2"]


def _missed(engine, ctx):
    with unit_of_work(engine) as s:
        return service.escalate_missed_deadlines(s, ctx)


def test_level_one_deadlines(engine, ctx, clock):
    """I: leadership reported within 2 h (met by paging it), command formed within 24 h."""
    e = _open(engine, ctx, level="I", wg=None)
    hours = ctx.policy.emergency.levels["I"].deadlines_hours
    _page(engine, ctx, e.emergency_id)  # pages the leadership group: reported
    clock.advance(hours=hours["command_formed"])
    assert _missed(engine, ctx) == []  # 24 h 以内: the last instant is in time
    clock.advance(seconds=1)
    assert _missed(engine, ctx) == [(e.emergency_id, "command_formed")]
    assert _missed(engine, ctx) == []  # escalated once
    assert _escalation_bodies(engine, ctx) == [
        "成立跨部门应急指挥部时限（2026-03-10 09:00）已过，尚未记录完成，现报领导小组。"
    ]
    with unit_of_work(engine) as s:
        # Recorded late: met, but not in time.
        assert service.record_deadline_met(s, ctx, e.emergency_id, "command_formed", actor="L1")
        assert not service.record_deadline_met(s, ctx, e.emergency_id, "command_formed", actor="L1")
        with pytest.raises(DomainError, match="deadline: level I has no deadline 'solution'"):
            service.record_deadline_met(s, ctx, e.emergency_id, "solution", actor="L1")
        details = s.scalars(
            select(EmergencyEvent.detail).where(EmergencyEvent.kind == "deadline_met")
        ).all()
    assert {d["name"]: d["in_time"] for d in details} == {
        "report_to_leadership": True,
        "command_formed": False,
    }


def test_level_two_solution_met_by_resolution(engine, ctx, clock):
    e = _open(engine, ctx, level="II")
    hours = ctx.policy.emergency.levels["II"].deadlines_hours["solution"]
    _page(engine, ctx, e.emergency_id)
    clock.advance(hours=hours)
    with unit_of_work(engine) as s:
        service.resolve(s, ctx, e.emergency_id, actor="E1")  # exactly at the deadline: in time
    assert _missed(engine, ctx) == []
    with unit_of_work(engine) as s:
        (detail,) = s.scalars(
            select(EmergencyEvent.detail).where(EmergencyEvent.kind == "deadline_met")
        ).all()
    assert detail["name"] == "solution" and detail["in_time"] is True


def test_leadership_reached_by_escalation_meets_the_report_deadline_late(engine, ctx, clock):
    """A level-II page escalated to leadership does not create a level-I deadline."""
    e = _open(engine, ctx, level="II")
    _page(engine, ctx, e.emergency_id)
    for _ in range(ctx.policy.emergency.escalation_repeat_limit):
        clock.advance(minutes=ctx.policy.emergency.acknowledge_within_minutes, seconds=1)
        _escalate(engine, ctx)
    assert _count(engine, EmergencyEvent, EmergencyEvent.kind == "deadline_met") == 0


def test_sweep_closes_resolved_emergencies(engine, ctx):
    a = _open(engine, ctx, key="a")
    _open(engine, ctx, key="b")  # still open: left alone
    with unit_of_work(engine) as s:
        service.resolve(s, ctx, a.emergency_id, actor="W3")
    with unit_of_work(engine) as s:
        assert service.close_resolved(s, ctx) == [a.emergency_id]
    with unit_of_work(engine) as s:
        assert service.close_resolved(s, ctx) == []
        assert service.state(s, a.emergency_id).follow_up_issue_id is not None
    assert _count(engine, Issue) == 1


def _refuse_issues_titled(engine, marker: str) -> None:
    """A real database refusal (a trigger), for the one follow-up issue whose title has
    `marker`: how a sweep meets a row it cannot write, without touching the code under test."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_marked BEFORE INSERT ON issue "
                f"WHEN instr(NEW.title, '{marker}') > 0 "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_marked() RETURNS trigger AS $$ BEGIN "
                f"IF strpos(NEW.title, '{marker}') > 0 THEN RAISE EXCEPTION 'refused by the test'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_marked BEFORE INSERT ON issue "
                "FOR EACH ROW EXECUTE FUNCTION refuse_marked()"
            )


def test_an_emergency_the_sweep_cannot_close_holds_back_none_of_the_others(engine, ctx, clock):
    """close_resolved closes each in a savepoint of its own: the one whose follow-up the
    database refuses stays resolved with nothing of it written (no issue, no trail entry, no
    notice), and those before and after it are closed in the same transaction."""
    opened = [
        _open(engine, ctx, key=key, title=title)
        for key, title in (("a", "磁盘告警 a"), ("b", "磁盘告警 BOOM"), ("c", "磁盘告警 c"))
    ]
    for e in opened:  # resolved a minute apart: the sweep closes them in this order
        clock.advance(minutes=1)
        with unit_of_work(engine) as s:
            service.resolve(s, ctx, e.emergency_id, actor="gateway:monitoring")
    _refuse_issues_titled(engine, "BOOM")
    b_id = opened[1].emergency_id

    def about_b() -> tuple[int, int]:
        return (
            _count(engine, TrailEntry, TrailEntry.subject_id == b_id),
            _count(engine, OutboxMessage, OutboxMessage.subject_id == b_id),
        )

    b_before = about_b()
    assert b_before[0] >= 2  # opened and resolved: the entries are keyed by its id
    trail_before = _count(engine, TrailEntry)

    a, b, c = (e.emergency_id for e in opened)
    with unit_of_work(engine) as s:
        assert service.close_resolved(s, ctx) == [a, c]

    with unit_of_work(engine) as s:
        assert [service.state(s, i).status for i in (a, b, c)] == [
            EmergencyStatus.closed,
            EmergencyStatus.resolved,
            EmergencyStatus.closed,
        ]
        assert service.state(s, b).follow_up_issue_id is None
        titles = s.scalars(select(Issue.title)).all()
    assert len(titles) == 2 and not any("BOOM" in t for t in titles)
    # Nothing about the refused one: no trail entry, no notice; the others' closings are.
    assert about_b() == b_before
    assert _count(engine, TrailEntry) > trail_before
    with unit_of_work(engine) as s:
        assert trail.verify(s).ok
        # The next sweep tries it again (and is refused again, alone).
        assert service.close_resolved(s, ctx) == []
        assert service.state(s, b).status == EmergencyStatus.resolved


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_raise_reads_the_emergency_again_under_its_lock(engine, ctx):
    """PostgreSQL, two gateway processes: one read the emergency at III, the other raised it
    to I and committed; the first one's level-II delivery must not lower it to II (it
    decided on the stale III), and its repeat is counted on top of the other's."""
    first = _open(engine, ctx, level="III")
    with unit_of_work(engine) as stale:
        seen = service.find_open(stale, "monitoring", "k1")
        assert seen.level == Level.III
        _open(engine, ctx, level="I")  # another process, committed meanwhile
        intake = EmergencyIntake(level=Level.II, title="数据平台中断", working_group="wg:data")
        answer = service.open_emergency(
            stale, ctx, intake, source="monitoring", dedup_key="k1", actor="test"
        )
    assert answer.level == Level.I and not answer.created
    with unit_of_work(engine) as s:
        e = service.get_emergency(s, first.emergency_id)
        assert (e.level, e.leading_group, e.repeats) == (Level.I, "leadership", 2)
    assert _count(engine, EmergencyEvent, EmergencyEvent.kind == "level_raised") == 1


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_raise_of_an_emergency_resolved_meanwhile_opens_a_new_one(engine, ctx):
    first = _open(engine, ctx, level="III")
    with unit_of_work(engine) as stale:
        seen = service.find_open(stale, "monitoring", "k1")
        with unit_of_work(engine) as other:
            service.resolve(other, ctx, first.emergency_id, actor="W3")
        intake = EmergencyIntake(level=Level.I, title="数据中心全部断电", working_group="wg:data")
        # The step after open_emergency's find_open, with what it read before the resolution
        # (open_emergency itself would read again, past the window this test holds open).
        answer = service._attach_repeat(stale, ctx, seen, intake, actor="test")
    assert answer.created and answer.emergency_id != first.emergency_id
    with unit_of_work(engine) as s:
        old = service.get_emergency(s, first.emergency_id)
        assert (old.status, old.level) == (EmergencyStatus.resolved, Level.III)
    assert _count(engine, EmergencyEvent, EmergencyEvent.kind == "level_raised") == 0


def test_a_raise_by_a_more_classified_report_raises_the_classification(engine, ctx):
    """The raise puts the report's title on the trail and in the escalation notice: at the
    emergency's old classification a secret title would reach channels cleared for less."""
    first = _open(engine, ctx, level="III")
    _open(
        engine, ctx, level="I", classification=Classification.secret, title="机密：核心数据库被入侵"
    )
    with unit_of_work(engine) as s:
        e = service.get_emergency(s, first.emergency_id)
        assert e.classification == "secret"
        notice = s.scalars(
            select(OutboxMessage).where(OutboxMessage.event_kind == "emergency_escalated")
        ).first()
        assert notice.classification == "secret"
    # A milder classification never lowers it.
    with unit_of_work(engine) as s:
        again = service.open_emergency(
            s,
            ctx,
            EmergencyIntake(level=Level.I, title="x" * 5, working_group="wg:data"),
            source="monitoring",
            dedup_key="k1",
            actor="test",
        )
        assert not again.created
    with unit_of_work(engine) as s:
        assert service.get_emergency(s, first.emergency_id).classification == "secret"


@pytest.mark.parametrize(("level", "tracked"), [("III", True), ("II", False), ("I", False)])
def test_the_executive_group_is_told_of_a_level_iii_emergency_it_tracks(
    engine, ctx, level, tracked
):
    """SPEC §5: level III is the working group's own and the executive tracks it: it is told
    when one opens (config emergency.levels.III.tracked), in the words of the level. Levels I
    and II page the executive or the leadership group already."""
    from taskforce.notify.delivery import MessageSnapshot
    from taskforce.notify.render import render_message

    e = _open(engine, ctx, level=level)
    with unit_of_work(engine) as s:
        notices = [
            MessageSnapshot.of(m)
            for m in s.scalars(
                select(OutboxMessage).where(OutboxMessage.event_kind == "emergency_tracked")
            )
        ]
    if not tracked:
        assert notices == []
        return
    [notice] = notices
    assert (notice.audience, notice.subject_id) == ("executive", e.emergency_id)
    body = render_message(
        notice, clearance=Classification.internal, locale="zh-CN", limits=ctx.policy.notifications
    ).body
    assert "III级（一般事项）应急事件，由数据共享工作组自行处置，执行小组跟踪" in body
    english = render_message(
        notice, clearance=Classification.internal, locale="en", limits=ctx.policy.notifications
    ).body
    assert "handled by the Data sharing working group itself" in english


def test_each_emergency_ends_in_an_issue_of_its_own_whatever_its_title(engine, ctx):
    """SPEC §5: every emergency ends in an issue for its follow-up. Alerts from one template
    have near-identical titles; the follow-ups were linked to the first as duplicates, and
    14 of 15 emergencies had no issue of their own (an operator trial)."""
    ids = []
    for n in (3, 4, 5):
        with unit_of_work(engine) as s:
            opened = service.open_emergency(
                s,
                ctx,
                EmergencyIntake(level=Level.III, title=f"批次告警 {n}", working_group="wg:data"),
                source="monitoring",
                dedup_key=f"batch-{n}",
                actor="test",
            )
            service.resolve(s, ctx, opened.emergency_id, actor="gateway:monitoring")
        ids.append(opened.emergency_id)
    with unit_of_work(engine) as s:
        assert sorted(service.close_resolved(s, ctx)) == sorted(ids)
        follow_ups = s.scalars(select(Emergency.follow_up_issue_id)).all()
    assert len(set(follow_ups)) == 3 and None not in follow_ups
    assert _count(engine, Issue) == 3


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_escalations_of_one_overdue_page_at_once_repage_it_once(engine, ctx, clock):
    """A response run started late escalates the page it finds overdue, and the sweep may
    do the same at that moment: the second waits for the first's row lock, and must then
    find nothing due (it paged on-call a second time: a review)."""
    import threading

    from sqlalchemy.orm import Session

    from taskforce.emergency.dispatch import dispatch_pending

    e = _open(engine, ctx, level="II")
    dispatch_pending(engine, ctx, lambda public_id: "run-1")
    clock.advance(minutes=ctx.policy.emergency.acknowledge_within_minutes, seconds=1)
    second: list = []
    with Session(engine) as first, first.begin():
        [repage] = service.escalate_due(first, ctx)  # holds the row lock until commit
        assert repage.action == "repage"
        racing = threading.Thread(target=lambda: second.append(_escalate(engine, ctx)))
        racing.start()
        until_waiting_for_a_lock(engine, racing)  # the sweep waits for the lock (or is done)
    racing.join(30)
    assert second == [[]]
    with unit_of_work(engine) as s:
        pages = s.scalars(
            select(TrailEntry.actor).where(
                TrailEntry.action == "emergency.paged", TrailEntry.subject_id == e.emergency_id
            )
        ).all()
    assert len(pages) == 2  # the first page and one repeat
