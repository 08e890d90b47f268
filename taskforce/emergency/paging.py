"""Paging and escalation (SPEC §5): an unacknowledged page is sent again, up to
`escalation_repeat_limit` pages per step, then goes one step up
`escalation_chain` (working group → executive → leadership).

The acknowledgement window counts its last instant as in time (以内), so
escalation starts just after it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.context import Context
from taskforce.emergency.deadlines import mark_deadline_met, mark_deadlines_met
from taskforce.emergency.models import Emergency, EmergencyEvent
from taskforce.emergency.queries import (
    UNACKNOWLEDGED,
    chain,
    get_emergency,
    group_for_step,
    on_call_members,
)
from taskforce.errors import NotFound
from taskforce.notify.outbox import enqueue, enqueue_many
from taskforce.org.models import Group
from taskforce.org.service import cleared_member_names
from taskforce.policy.schema import Classification


@dataclass(frozen=True)
class Escalation:
    public_id: str
    action: str  # first_page / repage / step_up / exhausted
    step: str
    page_number: int
    paged: list[str] = field(default_factory=list)


def rows_to_send(escalations: list[Escalation]) -> int:
    """How many outbox rows to claim to send these escalations' pages and notices at once
    (a page per member paged, a notice to at most three audiences)."""
    return sum(len(e.paged) for e in escalations) + 3 * len(escalations)


@dataclass(frozen=True)
class FirstPage:
    """What a first page wrote: whom it paged, and the trail entry its outbox rows hang on
    (`deliver_pending(trail_entry_ids=...)` sends exactly these rows)."""

    public_id: str
    members: list[str]
    trail_entry_id: int


def page(
    session: Session, ctx: Context, emergency: Emergency, *, actor: str, reason: str
) -> list[str]:
    """Page the on-call members of the current step; one trail entry, one outbox row each."""
    return page_with_entry(session, ctx, emergency, actor=actor, reason=reason)[0]


def page_with_entry(
    session: Session, ctx: Context, emergency: Emergency, *, actor: str, reason: str
) -> tuple[list[str], int]:
    """`page`, and the id of its trail entry (its outbox rows' `trail_entry_id`: what
    `dispatch.deliver_now` sends at once)."""
    now = ctx.now()
    if emergency.pages_at_step == 0:  # the step's first page: start where someone may answer
        emergency.escalation_step = cleared_step(
            session, ctx, emergency, emergency.escalation_step, {}
        )
    step_name = chain(ctx)[emergency.escalation_step]
    group = group_for_step(emergency, step_name)
    members = on_call_members(session, group, emergency.classification) if group else []
    page_number = emergency.pages_at_step + 1
    entry = events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="emergency.paged",
        subject_type="emergency",
        subject_id=emergency.public_id,
        classification=emergency.classification,
        is_drill=emergency.is_drill,
        payload=_detail(step_name, group, page_number, members, reason),
    )
    for code in members:
        enqueue(
            session,
            event_kind="emergency_page",
            key=_page_key(emergency, page_number),
            subject_type="emergency",
            subject_id=emergency.public_id,
            classification=emergency.classification,
            context=_page_context(ctx, emergency, code, group, page_number, members),
            at=now,
            routing=ctx.policy.notifications,
            audiences=[f"member-{code}"],
            is_drill=emergency.is_drill,
            priority=ctx.policy.emergency.page_priority,
            trail_entry_id=entry.id,
        )
    session.add(
        EmergencyEvent(
            emergency_id=emergency.id,
            kind="page",
            at=now,
            actor=actor,
            detail=_detail(step_name, group, page_number, members, reason),
        )
    )
    for name, met_by in ctx.policy.emergency.deadlines_met_by_page.items():
        if met_by == step_name and members:
            mark_deadline_met(session, ctx, emergency, name, actor=actor, how=f"{group} paged")
    emergency.pages_at_step = page_number
    emergency.next_escalation_at = now + dt.timedelta(
        minutes=ctx.policy.emergency.acknowledge_within_minutes
    )
    session.flush()
    return members, entry.id


def _detail(step_name: str, group: str | None, page_number: int, members: list[str], reason: str):
    """The page's trail payload and its emergency event's detail."""
    return {
        "step": step_name,
        "group": group,
        "page_number": page_number,
        "members": members,
        "reason": reason,
    }


def _page_key(emergency: Emergency, page_number: int) -> str:
    """The outbox idempotency key (`<key>:<audience>`): one page per step and number."""
    return f"emergency:{emergency.public_id}:page:{emergency.escalation_step}:{page_number}"


def _page_context(
    ctx: Context,
    emergency: Emergency,
    code: str,
    group: str | None,
    page_number: int,
    members: list[str],
) -> dict:
    level_rule = ctx.policy.emergency.levels[emergency.level.value]
    return {
        "member": code,
        "emergency": emergency.public_id,
        "level": emergency.level.value,
        "level_zh": level_rule.name_zh,
        "title": emergency.title,
        "group": group,
        "page_number": page_number,
        "deadlines": emergency.deadlines,
        "is_drill": emergency.is_drill,
        # read by the notification templates (emergency_page.j2)
        "ack_within_minutes": ctx.policy.emergency.acknowledge_within_minutes,
        "summary": (emergency.description or "")[:200],
        "paged": members,
    }


def page_if_unpaged(
    session: Session, ctx: Context, public_id: str, *, actor: str, reason: str
) -> list[str]:
    """The first page of an emergency, once: a rerun or a second caller pages nobody."""
    first = first_page(session, ctx, public_id, actor=actor, reason=reason)
    return first.members if first is not None else []


def first_page(
    session: Session, ctx: Context, public_id: str, *, actor: str, reason: str
) -> FirstPage | None:
    """`page_if_unpaged`, telling the caller which trail entry to deliver; None when the
    emergency was paged already (by the gateway's dispatch thread, a flow run or the sweep)
    or is no longer waiting for an answer.

    Once, whoever calls first: the emergency row is locked (PostgreSQL `FOR UPDATE`;
    SQLite transactions begin IMMEDIATE) before `pages_at_step` is read, so a second caller
    waits for the first one's commit and then sees the page; and the outbox rows' unique
    idempotency key (`emergency:<id>:page:<step>:<n>`) would refuse a second first page.
    """
    emergency = get_emergency(session, public_id, lock=True)
    if emergency.pages_at_step > 0 or emergency.status not in UNACKNOWLEDGED:
        return None
    members, entry_id = page_with_entry(session, ctx, emergency, actor=actor, reason=reason)
    return FirstPage(emergency.public_id, members, entry_id)


def first_pages(
    session: Session, ctx: Context, public_ids: list[str], *, actor: str, reason: str
) -> dict[str, FirstPage]:
    """`first_page` for many emergencies in one transaction, set-based: one locking SELECT,
    each group's on-call read once, one bulk append for the trail and one bulk INSERT for
    the outbox, one UPDATE batch. Writes what calling `first_page` for each in turn would
    (tests/emergency/test_page_first.py); only the trail's order across emergencies
    differs (all pages, then the deadlines they met). Why: the gateway's dispatch thread
    pages every new emergency in the gateway's own process, next to intake: one by one
    through the ORM a page costs ~5 ms of CPU, several times an intake.
    Keyed by public id, for those paged now; raises NotFound for an unknown id."""
    wanted = list(dict.fromkeys(str(p) for p in public_ids))
    found: dict[str, Emergency] = {}
    for start in range(0, len(wanted), 400):
        chunk = wanted[start : start + 400]
        query = (
            select(Emergency)
            .where(Emergency.public_id.in_(chunk))
            .order_by(Emergency.id)
            .with_for_update()
        )
        found.update((e.public_id, e) for e in session.scalars(query))
    for public_id in wanted:
        if public_id not in found:
            raise NotFound(f"no emergency {public_id!r}", field="emergency_id")
    due = [
        found[p]
        for p in wanted
        if found[p].pages_at_step == 0 and found[p].status in UNACKNOWLEDGED
    ]
    if not due:
        return {}
    now = ctx.now()
    steps = chain(ctx)
    on_call: dict[tuple[str, Classification], list[str]] = {}
    cleared: dict[tuple[str, Classification], bool] = {}
    plans = []
    for emergency in due:
        emergency.escalation_step = cleared_step(
            session, ctx, emergency, emergency.escalation_step, cleared
        )
        step_name = steps[emergency.escalation_step]
        group = group_for_step(emergency, step_name)
        whom = (group, emergency.classification)
        if group and whom not in on_call:
            on_call[whom] = on_call_members(session, group, emergency.classification)
        members = list(on_call[whom]) if group else []
        plans.append((emergency, step_name, group, members, emergency.pages_at_step + 1))
    entry_ids = events.record_many(
        session,
        ctx.policy,
        [
            {
                "at": now,
                "actor": actor,
                "action": "emergency.paged",
                "subject_type": "emergency",
                "subject_id": e.public_id,
                "classification": e.classification,
                "is_drill": e.is_drill,
                "payload": _detail(step_name, group, number, members, reason),
            }
            for e, step_name, group, members, number in plans
        ],
    )
    policy = ctx.policy.emergency
    enqueue_many(
        session,
        [
            {
                "event_kind": "emergency_page",
                "key": _page_key(e, number),
                "subject_type": "emergency",
                "subject_id": e.public_id,
                "classification": e.classification,
                "context": _page_context(ctx, e, code, group, number, members),
                "at": now,
                "routing": ctx.policy.notifications,
                "audiences": [f"member-{code}"],
                "is_drill": e.is_drill,
                "priority": policy.page_priority,
                "trail_entry_id": entry_id,
            }
            for (e, _step, group, members, number), entry_id in zip(plans, entry_ids, strict=True)
            for code in members
        ],
    )
    session.add_all(
        EmergencyEvent(
            emergency_id=e.id,
            kind="page",
            at=now,
            actor=actor,
            detail=_detail(step_name, group, number, members, reason),
        )
        for e, step_name, group, members, number in plans
    )
    mark_deadlines_met(
        session,
        ctx,
        [
            (e, name, f"{group} paged")
            for e, step_name, group, members, _number in plans
            for name, met_by in policy.deadlines_met_by_page.items()
            if met_by == step_name and members
        ],
        actor=actor,
    )
    window = dt.timedelta(minutes=policy.acknowledge_within_minutes)
    for e, _step, _group, _members, number in plans:
        e.pages_at_step = number
        e.next_escalation_at = now + window
    session.flush()
    return {
        e.public_id: FirstPage(e.public_id, members, entry_id)
        for (e, _step, _group, members, _number), entry_id in zip(plans, entry_ids, strict=True)
    }


def escalate_due(session: Session, ctx: Context, *, only: str | None = None) -> list[Escalation]:
    """Re-page or step up every unacknowledged page whose acknowledgement window has passed,
    and page any emergency that nobody paged within `unpaged_grace_seconds`.

    One query finds the due emergencies; each is then moved one step in this
    transaction. Running it twice at the same instant does nothing the second time.
    """
    now = ctx.now()
    is_due = (
        Emergency.status.in_(UNACKNOWLEDGED),
        Emergency.acknowledged_at.is_(None),
        Emergency.next_escalation_at.is_not(None),
        Emergency.next_escalation_at < now,
    )
    query = select(Emergency.id).where(*is_due).order_by(Emergency.next_escalation_at, Emergency.id)
    # The safety net: dispatched, but no flow run paged in time (no worker running?).
    grace = dt.timedelta(seconds=ctx.policy.emergency.unpaged_grace_seconds)
    is_unpaged = (
        Emergency.status.in_(UNACKNOWLEDGED),
        Emergency.pages_at_step == 0,
        Emergency.opened_at < now - grace,
    )
    unpaged = select(Emergency.id).where(*is_unpaged)
    if only is not None:
        query = query.where(Emergency.public_id == str(only))
        unpaged = unpaged.where(Emergency.public_id == str(only))
    due_ids = list(session.scalars(query))
    unpaged_ids = list(session.scalars(unpaged))
    steps = chain(ctx)
    results: list[Escalation] = []
    # The conditions again with the lock: PostgreSQL re-checks them on a row another
    # transaction changed meanwhile (a response run and the sweep escalating the same
    # emergency at once: one page, not two).
    for emergency in session.scalars(
        select(Emergency)
        .where(Emergency.id.in_(unpaged_ids), *is_unpaged)
        .order_by(Emergency.id)
        .with_for_update()
    ):
        paged = page(session, ctx, emergency, actor="escalation", reason="not paged in time")
        step = steps[emergency.escalation_step]
        results.append(Escalation(emergency.public_id, "first_page", step, 1, paged))
    if not due_ids:
        return results
    limit = ctx.policy.emergency.escalation_repeat_limit
    for emergency in session.scalars(
        select(Emergency)
        .where(Emergency.id.in_(due_ids), *is_due)
        .order_by(Emergency.id)
        .with_for_update()
    ):
        if emergency.pages_at_step < limit:
            paged = page(session, ctx, emergency, actor="escalation", reason="unacknowledged")
            results.append(
                Escalation(
                    emergency.public_id,
                    "repage",
                    steps[emergency.escalation_step],
                    emergency.pages_at_step,
                    paged,
                )
            )
            continue
        next_step = _next_step(session, ctx, emergency, steps)
        if next_step is None:
            emergency.next_escalation_at = None
            _record_escalation(session, ctx, emergency, "exhausted", steps, now)
            results.append(
                Escalation(
                    emergency.public_id,
                    "exhausted",
                    steps[emergency.escalation_step],
                    emergency.pages_at_step,
                )
            )
            continue
        from_step = steps[emergency.escalation_step]
        emergency.escalation_step = next_step
        emergency.pages_at_step = 0
        _record_escalation(session, ctx, emergency, "step_up", steps, now, from_step=from_step)
        paged = page(session, ctx, emergency, actor="escalation", reason="escalated")
        results.append(Escalation(emergency.public_id, "step_up", steps[next_step], 1, paged))
    return results


def _next_step(
    session: Session, ctx: Context, emergency: Emergency, steps: list[str]
) -> int | None:
    for index in range(emergency.escalation_step + 1, len(steps)):
        if group_for_step(emergency, steps[index]):
            return cleared_step(session, ctx, emergency, index, {})
    return None


def cleared_step(
    session: Session,
    ctx: Context,
    emergency: Emergency,
    start: int,
    cache: dict[tuple[str, Classification], bool],
) -> int:
    """The first step from `start` up whose group has a member cleared for the emergency;
    `start` when none has. Only a cleared member may acknowledge (emergency/responders.py):
    a secret level-III emergency paged its working group, nobody there cleared, three times
    before the executive group heard of it (45 minutes; an operator trial)."""
    steps = chain(ctx)
    for index in range(start, len(steps)):
        group = group_for_step(emergency, steps[index])
        if not group:
            continue
        key = (group, Classification(emergency.classification))
        if key not in cache:
            cache[key] = bool(cleared_member_names(session, Group.code == group, key[1]))
        if cache[key]:
            return index
    return start


def _record_escalation(
    session: Session,
    ctx: Context,
    emergency: Emergency,
    action: str,
    steps: list[str],
    now: dt.datetime,
    *,
    from_step: str | None = None,
) -> None:
    to_step = steps[emergency.escalation_step]
    detail = {"action": action, "from": from_step, "to": to_step}
    session.add(
        EmergencyEvent(
            emergency_id=emergency.id, kind="escalate", at=now, actor="escalation", detail=detail
        )
    )
    events.record(
        session,
        ctx.policy,
        at=now,
        actor="escalation",
        action=f"emergency.escalation_{action}",
        subject_type="emergency",
        subject_id=emergency.public_id,
        classification=emergency.classification,
        is_drill=emergency.is_drill,
        notify="emergency_escalated",
        priority=ctx.policy.emergency.page_priority,
        payload=detail,
        context={
            "emergency": emergency.public_id,
            "level": emergency.level.value,
            "title": emergency.title,
            "from": from_step,
            "to": to_step,
            "action": action,
            "pages": ctx.policy.emergency.escalation_repeat_limit,  # unanswered at the step
            "is_drill": emergency.is_drill,
            "reason": "page not acknowledged",
            "summary": f"{action}: {from_step or '-'} → {to_step}",
        },
    )
