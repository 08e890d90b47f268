"""Emergencies (应急, SPEC §5): intake, paging, acknowledgement, escalation,
reserve draws and the follow-up issue.

Plain Python over a session: the gateway, the flows and the tests call these
functions; none of them imports Prefect. Each public function is one state
change in the caller's transaction, with its trail entry and outbox rows.

Escalation (SPEC §5, config `emergency`): a page that nobody acknowledges
within `acknowledge_within_minutes` (以内: the last instant still counts as in
time, so escalation starts just after it) is sent again, up to
`escalation_repeat_limit` pages per step, then goes one step up
`escalation_chain` (working group → executive → leadership). A level starts at
its leading group's step.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.authority import may_approve
from taskforce.budget.models import BudgetLine, FiscalYear, LedgerEntry, LedgerKind
from taskforce.context import Context
from taskforce.emergency.forms import EmergencyIntake, OpenResult, ReserveDrawForm
from taskforce.emergency.models import Emergency, EmergencyEvent, EmergencyStatus, Level
from taskforce.errors import DomainError, IllegalTransition, NotFound
from taskforce.idempotency import previous_result, remember
from taskforce.loop.forms import ReportIssueForm
from taskforce.loop.report import report_issue
from taskforce.money import format_yuan, to_fen
from taskforce.notify.outbox import enqueue
from taskforce.org.models import Group, Member

OPEN_STATUSES = (
    EmergencyStatus.pending_dispatch,
    EmergencyStatus.dispatched,
    EmergencyStatus.acknowledged,
)
UNACKNOWLEDGED = (EmergencyStatus.pending_dispatch, EmergencyStatus.dispatched)


@dataclass(frozen=True)
class EmergencyState:
    """What a flow needs to decide its next step, read in one query."""

    public_id: str
    status: EmergencyStatus
    level: Level
    is_drill: bool
    paged: bool
    flow_run_id: str | None
    follow_up_issue_id: int | None
    next_escalation_at: dt.datetime | None


@dataclass(frozen=True)
class Escalation:
    public_id: str
    action: str  # first_page / repage / step_up / exhausted
    step: str
    page_number: int
    paged: list[str] = field(default_factory=list)


# --- reading ---------------------------------------------------------------


def get_emergency(session: Session, public_id: str, *, lock: bool = False) -> Emergency:
    query = select(Emergency).where(Emergency.public_id == str(public_id))
    if lock:
        query = query.with_for_update()
    emergency = session.scalars(query).one_or_none()
    if emergency is None:
        raise NotFound(f"no emergency {public_id!r}", field="emergency_id")
    return emergency


def find_open(session: Session, source: str, dedup_key: str) -> Emergency | None:
    return session.scalars(
        select(Emergency).where(
            Emergency.source == source,
            Emergency.dedup_key == dedup_key,
            Emergency.status.in_(OPEN_STATUSES),
        )
    ).one_or_none()


def state(session: Session, public_id: str) -> EmergencyState:
    e = get_emergency(session, public_id)
    return EmergencyState(
        public_id=e.public_id,
        status=e.status,
        level=e.level,
        is_drill=e.is_drill,
        paged=e.pages_at_step > 0,
        flow_run_id=e.flow_run_id,
        follow_up_issue_id=e.follow_up_issue_id,
        next_escalation_at=e.next_escalation_at,
    )


def pending_dispatch(session: Session) -> list[str]:
    """Public ids of emergencies no flow run was created for yet, oldest first."""
    return list(
        session.scalars(
            select(Emergency.public_id)
            .where(Emergency.flow_run_id.is_(None), Emergency.status != EmergencyStatus.closed)
            .order_by(Emergency.opened_at, Emergency.id)
        )
    )


def on_call_members(session: Session, group_code: str) -> list[str]:
    """Member codes to page for a group: its on-call members (§2.4 24-hour contacts).

    A group without an on-call member is paged whole, so no step of the chain is silent.
    """
    rows = session.execute(
        select(Member.code, Member.on_call)
        .join(Group, Member.group_id == Group.id)
        .where(Group.code == group_code, Member.active.is_(True))
        .order_by(Member.code)
    ).all()
    on_call = [code for code, flag in rows if flag]
    return on_call or [code for code, _ in rows]


# --- intake ----------------------------------------------------------------


def _chain(ctx: Context) -> list[str]:
    return list(ctx.policy.emergency.escalation_chain)


def _group_for_step(emergency: Emergency, step_name: str) -> str | None:
    if step_name == "working_group":
        return emergency.working_group
    return step_name


def _validate_intake(session: Session, ctx: Context, intake: EmergencyIntake) -> None:
    rule = ctx.policy.emergency.levels[intake.level.value]
    if rule.leading_group == "working_group" and not intake.working_group:
        raise DomainError(
            f"level {intake.level.value} is led by a working group, but none was given",
            field="working_group",
            allowed="a working group code from config/org.yaml, e.g. wg:data",
        )
    if intake.working_group:
        exists = session.scalar(select(Group.id).where(Group.code == intake.working_group))
        if exists is None:
            known = ", ".join(
                session.scalars(
                    select(Group.code).where(Group.code.like("wg:%")).order_by(Group.code)
                )
            )
            raise DomainError(
                f"unknown working group {intake.working_group!r}",
                field="working_group",
                allowed=known,
            )


def open_emergency(
    session: Session,
    ctx: Context,
    intake: EmergencyIntake,
    *,
    source: str,
    dedup_key: str,
    actor: str,
    is_drill: bool = False,
) -> OpenResult:
    """Open an emergency, or attach this delivery to the open one with the same dedup key.

    A repeat counts on the open emergency and pages nobody. Concurrent
    deliveries of one key race on the partial unique index
    uq_emergency_open_dedup: the loser's insert fails and it attaches instead.
    """
    intake = EmergencyIntake.model_validate(intake.model_dump())
    if not dedup_key or len(dedup_key) > 200:
        raise DomainError("must be 1 to 200 characters", field="dedup_key")
    existing = find_open(session, source, dedup_key)
    if existing is not None:
        return _attach_repeat(session, ctx, existing, actor=actor)
    _validate_intake(session, ctx, intake)

    now = ctx.now()
    rule = ctx.policy.emergency.levels[intake.level.value]
    deadlines = {
        name: (now + dt.timedelta(hours=hours)).isoformat()
        for name, hours in rule.deadlines_hours.items()
    }
    emergency = Emergency(
        public_id=str(uuid.uuid4()),
        source=source,
        dedup_key=dedup_key,
        level=intake.level,
        title=intake.title,
        description=intake.description,
        classification=intake.classification,
        status=EmergencyStatus.pending_dispatch,
        is_drill=is_drill,
        leading_group=rule.leading_group,
        working_group=intake.working_group,
        opened_at=now,
        deadlines=deadlines,
        escalation_step=_chain(ctx).index(rule.leading_group),
        pages_at_step=0,
        payload=intake.details,
        repeats=0,
    )
    try:
        with session.begin_nested():
            session.add(emergency)
            session.flush()
    except IntegrityError:
        # Another delivery of the same key committed first (PostgreSQL: our
        # insert waited for it on the unique index). Attach to it.
        existing = find_open(session, source, dedup_key)
        if existing is None:
            raise
        return _attach_repeat(session, ctx, existing, actor=actor)

    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="emergency.opened",
        subject_type="emergency",
        subject_id=emergency.public_id,
        classification=emergency.classification,
        is_drill=is_drill,
        payload={
            "source": source,
            "dedup_key": dedup_key,
            "level": intake.level.value,
            "title": intake.title,
            "leading_group": rule.leading_group,
            "working_group": intake.working_group,
            "deadlines": deadlines,
            "is_drill": is_drill,
        },
    )
    return OpenResult(
        emergency_id=emergency.public_id,
        created=True,
        status=emergency.status.value,
        level=emergency.level,
        is_drill=is_drill,
    )


def _attach_repeat(
    session: Session, ctx: Context, emergency: Emergency, *, actor: str
) -> OpenResult:
    now = ctx.now()
    # An UPDATE … SET repeats = repeats + 1, so concurrent repeats never lose a count.
    session.execute(
        update(Emergency)
        .where(Emergency.id == emergency.id)
        .values(repeats=Emergency.repeats + 1)
        .execution_options(synchronize_session=False)
    )
    session.add(
        EmergencyEvent(emergency_id=emergency.id, kind="repeat", at=now, actor=actor, detail={})
    )
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="emergency.repeat",
        subject_type="emergency",
        subject_id=emergency.public_id,
        classification=emergency.classification,
        is_drill=emergency.is_drill,
        payload={"source": emergency.source, "dedup_key": emergency.dedup_key},
    )
    session.refresh(emergency)
    return OpenResult(
        emergency_id=emergency.public_id,
        created=False,
        status=emergency.status.value,
        level=emergency.level,
        is_drill=emergency.is_drill,
    )


# --- paging ----------------------------------------------------------------


def _page(
    session: Session, ctx: Context, emergency: Emergency, *, actor: str, reason: str
) -> list[str]:
    """Page the on-call members of the current step; one trail entry, one outbox row each."""
    now = ctx.now()
    step_name = _chain(ctx)[emergency.escalation_step]
    group = _group_for_step(emergency, step_name)
    members = on_call_members(session, group) if group else []
    page_number = emergency.pages_at_step + 1
    level_rule = ctx.policy.emergency.levels[emergency.level.value]
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
        payload={
            "step": step_name,
            "group": group,
            "page_number": page_number,
            "members": members,
            "reason": reason,
        },
    )
    for code in members:
        enqueue(
            session,
            event_kind="emergency_page",
            key=f"emergency:{emergency.public_id}:page:{emergency.escalation_step}:{page_number}",
            subject_type="emergency",
            subject_id=emergency.public_id,
            classification=emergency.classification,
            context={
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
                "ack_within": f"{ctx.policy.emergency.acknowledge_within_minutes} min",
                "summary": (emergency.description or "")[:200],
                "paged": members,
            },
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
            detail={
                "step": step_name,
                "group": group,
                "page_number": page_number,
                "members": members,
                "reason": reason,
            },
        )
    )
    for name, met_by in ctx.policy.emergency.deadlines_met_by_page.items():
        if met_by == step_name and members:
            _deadline_met(session, ctx, emergency, name, actor=actor, how=f"{group} paged")
    emergency.pages_at_step = page_number
    emergency.next_escalation_at = now + dt.timedelta(
        minutes=ctx.policy.emergency.acknowledge_within_minutes
    )
    session.flush()
    return members


def page_if_unpaged(
    session: Session, ctx: Context, public_id: str, *, actor: str, reason: str
) -> list[str]:
    """The first page of an emergency, once: a rerun or a second caller pages nobody."""
    emergency = get_emergency(session, public_id, lock=True)
    if emergency.pages_at_step > 0 or emergency.status not in UNACKNOWLEDGED:
        return []
    return _page(session, ctx, emergency, actor=actor, reason=reason)


def escalate_due(session: Session, ctx: Context, *, only: str | None = None) -> list[Escalation]:
    """Re-page or step up every unacknowledged page whose acknowledgement window has passed,
    and page any emergency that nobody paged within `unpaged_grace_seconds`.

    One query finds the due emergencies; each is then moved one step in this
    transaction. Running it twice at the same instant does nothing the second time.
    """
    now = ctx.now()
    query = (
        select(Emergency.id)
        .where(
            Emergency.status.in_(UNACKNOWLEDGED),
            Emergency.acknowledged_at.is_(None),
            Emergency.next_escalation_at.is_not(None),
            Emergency.next_escalation_at < now,
        )
        .order_by(Emergency.next_escalation_at, Emergency.id)
    )
    # The safety net: dispatched, but no flow run paged in time (no worker running?).
    grace = dt.timedelta(seconds=ctx.policy.emergency.unpaged_grace_seconds)
    unpaged = select(Emergency.id).where(
        Emergency.status.in_(UNACKNOWLEDGED),
        Emergency.pages_at_step == 0,
        Emergency.opened_at < now - grace,
    )
    if only is not None:
        query = query.where(Emergency.public_id == str(only))
        unpaged = unpaged.where(Emergency.public_id == str(only))
    due_ids = list(session.scalars(query))
    unpaged_ids = list(session.scalars(unpaged))
    chain = _chain(ctx)
    results: list[Escalation] = []
    for emergency in session.scalars(
        select(Emergency)
        .where(Emergency.id.in_(unpaged_ids))
        .order_by(Emergency.id)
        .with_for_update()
    ):
        paged = _page(session, ctx, emergency, actor="escalation", reason="not paged in time")
        step = chain[emergency.escalation_step]
        results.append(Escalation(emergency.public_id, "first_page", step, 1, paged))
    if not due_ids:
        return results
    limit = ctx.policy.emergency.escalation_repeat_limit
    for emergency in session.scalars(
        select(Emergency).where(Emergency.id.in_(due_ids)).order_by(Emergency.id).with_for_update()
    ):
        if emergency.pages_at_step < limit:
            paged = _page(session, ctx, emergency, actor="escalation", reason="unacknowledged")
            results.append(
                Escalation(
                    emergency.public_id,
                    "repage",
                    chain[emergency.escalation_step],
                    emergency.pages_at_step,
                    paged,
                )
            )
            continue
        next_step = _next_step(emergency, chain)
        if next_step is None:
            emergency.next_escalation_at = None
            _record_escalation(session, ctx, emergency, "exhausted", chain, now)
            results.append(
                Escalation(
                    emergency.public_id,
                    "exhausted",
                    chain[emergency.escalation_step],
                    emergency.pages_at_step,
                )
            )
            continue
        from_step = chain[emergency.escalation_step]
        emergency.escalation_step = next_step
        emergency.pages_at_step = 0
        _record_escalation(session, ctx, emergency, "step_up", chain, now, from_step=from_step)
        paged = _page(session, ctx, emergency, actor="escalation", reason="escalated")
        results.append(Escalation(emergency.public_id, "step_up", chain[next_step], 1, paged))
    return results


def _next_step(emergency: Emergency, chain: list[str]) -> int | None:
    for index in range(emergency.escalation_step + 1, len(chain)):
        if _group_for_step(emergency, chain[index]):
            return index
    return None


def _record_escalation(
    session: Session,
    ctx: Context,
    emergency: Emergency,
    action: str,
    chain: list[str],
    now: dt.datetime,
    *,
    from_step: str | None = None,
) -> None:
    to_step = chain[emergency.escalation_step]
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
            "is_drill": emergency.is_drill,
            "reason": "page not acknowledged",
            "summary": f"{action}: {from_step or '-'} → {to_step}",
        },
    )


# --- acknowledgement and resolution ----------------------------------------


def acknowledge(
    session: Session, ctx: Context, public_id: str, *, actor: str, note: str = ""
) -> EmergencyState:
    """Stop the escalation. Acknowledging twice changes nothing the second time."""
    emergency = get_emergency(session, public_id, lock=True)
    if emergency.acknowledged_at is not None or emergency.status not in UNACKNOWLEDGED:
        return state(session, public_id)
    now = ctx.now()
    emergency.status = EmergencyStatus.acknowledged
    emergency.acknowledged_at = now
    emergency.next_escalation_at = None
    session.add(
        EmergencyEvent(
            emergency_id=emergency.id,
            kind="acknowledge",
            at=now,
            actor=actor,
            detail={"note": note},
        )
    )
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="emergency.acknowledged",
        subject_type="emergency",
        subject_id=emergency.public_id,
        classification=emergency.classification,
        is_drill=emergency.is_drill,
        payload={"note": note, "minutes_to_ack": _minutes(emergency.opened_at, now)},
    )
    session.flush()
    return state(session, public_id)


def resolve(
    session: Session, ctx: Context, public_id: str, *, actor: str, note: str = ""
) -> EmergencyState:
    """The incident is over; the dedup key is free again. The follow-up issue comes next."""
    emergency = get_emergency(session, public_id, lock=True)
    if emergency.status in (EmergencyStatus.resolved, EmergencyStatus.closed):
        return state(session, public_id)
    now = ctx.now()
    if emergency.acknowledged_at is None:
        emergency.acknowledged_at = now  # resolving implies someone took it
    emergency.status = EmergencyStatus.resolved
    emergency.resolved_at = now
    emergency.next_escalation_at = None
    session.add(
        EmergencyEvent(
            emergency_id=emergency.id, kind="resolve", at=now, actor=actor, detail={"note": note}
        )
    )
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="emergency.resolved",
        subject_type="emergency",
        subject_id=emergency.public_id,
        classification=emergency.classification,
        is_drill=emergency.is_drill,
        payload={"note": note, "minutes_to_resolve": _minutes(emergency.opened_at, now)},
    )
    for name in emergency.deadlines:
        _deadline_met(session, ctx, emergency, name, actor=actor, how="resolved")
    session.flush()
    return state(session, public_id)


def act_on_dedup(
    session: Session, ctx: Context, *, source: str, dedup_key: str, action: str, actor: str
) -> EmergencyState:
    """A monitoring system's acknowledge / resolve for the open emergency of its dedup key."""
    emergency = find_open(session, source, dedup_key)
    if emergency is None:
        raise NotFound(
            f"no open emergency from {source!r} with this dedup key",
            field="dedup_key",
            allowed="the dedup key of an open emergency (trigger it first)",
        )
    if action == "acknowledge":
        return acknowledge(session, ctx, emergency.public_id, actor=actor)
    if action == "resolve":
        return resolve(session, ctx, emergency.public_id, actor=actor)
    raise DomainError(f"unknown action {action!r}", field="action", allowed="acknowledge, resolve")


# --- level deadlines (SPEC §5: I 2 h / 24 h, II 48 h) -------------------------


def _deadline_events(session: Session, emergency_ids: list[int]) -> dict[int, dict[str, str]]:
    """Per emergency: deadline name -> 'met' or 'missed' (met wins), from its events."""
    out: dict[int, dict[str, str]] = {}
    if not emergency_ids:
        return out
    rows = session.execute(
        select(EmergencyEvent.emergency_id, EmergencyEvent.kind, EmergencyEvent.detail).where(
            EmergencyEvent.emergency_id.in_(emergency_ids),
            EmergencyEvent.kind.in_(("deadline_met", "deadline_missed")),
        )
    ).all()
    for emergency_id, kind, detail in rows:
        marks = out.setdefault(emergency_id, {})
        name = detail.get("name")
        if kind == "deadline_met" or name not in marks:
            marks[name] = "met" if kind == "deadline_met" else "missed"
    return out


def _deadline_met(
    session: Session, ctx: Context, emergency: Emergency, name: str, *, actor: str, how: str
) -> bool:
    if name not in emergency.deadlines:
        return False
    session.flush()
    if _deadline_events(session, [emergency.id]).get(emergency.id, {}).get(name) == "met":
        return False
    now = ctx.now()
    due = dt.datetime.fromisoformat(emergency.deadlines[name])
    detail = {"name": name, "how": how, "due_at": due.isoformat(), "in_time": now <= due}
    session.add(
        EmergencyEvent(
            emergency_id=emergency.id, kind="deadline_met", at=now, actor=actor, detail=detail
        )
    )
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="emergency.deadline_met",
        subject_type="emergency",
        subject_id=emergency.public_id,
        classification=emergency.classification,
        is_drill=emergency.is_drill,
        payload=detail,
    )
    return True


def record_deadline_met(
    session: Session, ctx: Context, public_id: str, name: str, *, actor: str, note: str = ""
) -> bool:
    """An operator records a level deadline as met (e.g. the cross-department command formed)."""
    emergency = get_emergency(session, public_id, lock=True)
    if name not in emergency.deadlines:
        raise DomainError(
            f"level {emergency.level.value} has no deadline {name!r}",
            field="deadline",
            allowed=", ".join(sorted(emergency.deadlines)) or "none for this level",
        )
    return _deadline_met(session, ctx, emergency, name, actor=actor, how=note or "recorded")


def escalate_missed_deadlines(session: Session, ctx: Context) -> list[tuple[str, str]]:
    """Escalate, once each, the level deadlines of open emergencies that passed unmet.

    One query reads the open emergencies' deadlines, one their met/missed marks.
    """
    now = ctx.now()
    rows = session.execute(
        select(Emergency.id, Emergency.public_id, Emergency.deadlines).where(
            Emergency.status.in_(OPEN_STATUSES)
        )
    ).all()
    rows = [r for r in rows if r.deadlines]
    marks = _deadline_events(session, [r.id for r in rows])
    due = [
        (r.id, r.public_id, name)
        for r in rows
        for name, at in sorted(r.deadlines.items())
        if dt.datetime.fromisoformat(at) < now and name not in marks.get(r.id, {})
    ]
    if not due:
        return []
    emergencies = {
        e.id: e
        for e in session.scalars(select(Emergency).where(Emergency.id.in_({d[0] for d in due})))
    }
    for emergency_id, public_id, name in due:
        emergency = emergencies[emergency_id]
        detail = {"name": name, "due_at": emergency.deadlines[name]}
        session.add(
            EmergencyEvent(
                emergency_id=emergency_id,
                kind="deadline_missed",
                at=now,
                actor="system",
                detail=detail,
            )
        )
        events.record(
            session,
            ctx.policy,
            at=now,
            actor="system",
            action="emergency.deadline_missed",
            subject_type="emergency",
            subject_id=public_id,
            classification=emergency.classification,
            is_drill=emergency.is_drill,
            notify="emergency_escalated",
            priority=ctx.policy.emergency.page_priority,
            payload=detail,
            context={
                "emergency": public_id,
                "level": emergency.level.value,
                "title": emergency.title,
                "reason": f"deadline {name} missed",
                "summary": f"deadline {name} due {emergency.deadlines[name]} missed",
                "is_drill": emergency.is_drill,
            },
        )
    return [(public_id, name) for _, public_id, name in due]


# --- dispatch --------------------------------------------------------------


def mark_dispatched(
    session: Session, ctx: Context, public_id: str, flow_run_id: str, *, actor: str
) -> bool:
    """Remember the flow run moving this emergency; False when one was recorded already."""
    emergency = get_emergency(session, public_id, lock=True)
    if emergency.flow_run_id is not None:
        return False
    emergency.flow_run_id = str(flow_run_id)
    if emergency.status == EmergencyStatus.pending_dispatch:
        emergency.status = EmergencyStatus.dispatched
    events.record(
        session,
        ctx.policy,
        at=ctx.now(),
        actor=actor,
        action="emergency.dispatched",
        subject_type="emergency",
        subject_id=emergency.public_id,
        classification=emergency.classification,
        is_drill=emergency.is_drill,
        payload={"flow_run_id": str(flow_run_id)},
    )
    session.flush()
    return True


def record_dispatch_failure(
    session: Session, ctx: Context, public_id: str, error: str, *, actor: str
) -> list[str]:
    """Prefect could not be reached: keep the emergency pending and page its on-call directly.

    Only the failure that leads to the direct page goes on the trail; the
    sweep's later retries during an outage are logged by the caller, so the
    trail does not fill with one entry per emergency per minute.
    """
    emergency = get_emergency(session, public_id, lock=True)
    if emergency.pages_at_step > 0 or emergency.status not in UNACKNOWLEDGED:
        return []
    events.record(
        session,
        ctx.policy,
        at=ctx.now(),
        actor=actor,
        action="emergency.dispatch_failed",
        subject_type="emergency",
        subject_id=emergency.public_id,
        classification=emergency.classification,
        is_drill=emergency.is_drill,
        payload={"error": error[:500], "direct_page": True},
    )
    return page_if_unpaged(session, ctx, public_id, actor=actor, reason="dispatch_unavailable")


# --- the reserve and the follow-up -----------------------------------------


def request_reserve_draw(
    session: Session,
    ctx: Context,
    public_id: str,
    form: ReserveDrawForm,
    *,
    actor: str,
    key: str,
) -> dict:
    """Draw on the emergency reserve (SPEC §4) for this emergency, within the authority rules.

    The draw is refused, writing nothing, when the emergency is no longer open
    or is a drill, when the approving group lacks the authority for the amount,
    or when the year's reserve would be overdrawn.
    """
    form = ReserveDrawForm.model_validate(form.model_dump())
    if (done := previous_result(session, key)) is not None:
        return done
    emergency = get_emergency(session, public_id, lock=True)
    if emergency.status not in OPEN_STATUSES:
        raise IllegalTransition(
            f"the emergency is {emergency.status.value}",
            field="emergency_id",
            allowed="an open emergency (pending, dispatched or acknowledged)",
        )
    if emergency.is_drill:
        raise DomainError(
            "the emergency is a drill", field="emergency_id", allowed="a real emergency"
        )
    amount_fen = to_fen(form.amount)
    check = may_approve(
        form.approved_by, amount_fen, ctx.policy.authority, cross_department=form.cross_department
    )
    if not check.allowed:
        raise DomainError(
            f"{form.approved_by.value} may not approve {format_yuan(amount_fen)}: {check.rule}",
            field="approved_by",
            allowed=check.required.value,
        )
    year = ctx.today().year
    line_id, remaining = _reserve_left(session, year)
    if amount_fen > remaining:
        raise DomainError(
            f"{format_yuan(amount_fen)} exceeds the reserve left for {year} ({format_yuan(remaining)})",
            field="amount",
            allowed=f"at most {format_yuan(remaining)}",
        )
    now = ctx.now()
    entry = LedgerEntry(
        fiscal_year=year,
        line_id=line_id,
        kind=LedgerKind.reserve_draw,
        emergency_id=emergency.id,
        entry_date=ctx.today(),
        amount_fen=amount_fen,
        payee=form.payee,
        description=form.description or f"emergency {emergency.public_id}: {emergency.title}",
        external_ref=key,
        created_at=now,
    )
    session.add(entry)
    session.flush()
    detail = {
        "ledger_entry_id": entry.id,
        "amount_fen": amount_fen,
        "approved_by": form.approved_by.value,
        "rule": check.rule,
        "remaining_fen": remaining - amount_fen,
    }
    session.add(
        EmergencyEvent(
            emergency_id=emergency.id, kind="reserve_draw", at=now, actor=actor, detail=detail
        )
    )
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="emergency.reserve_drawn",
        subject_type="emergency",
        subject_id=emergency.public_id,
        classification=emergency.classification,
        is_drill=emergency.is_drill,
        payload=detail,
    )
    remember(session, key, "reserve_draw", detail, now)
    return detail


def _reserve_left(session: Session, year: int) -> tuple[int | None, int]:
    """The year's reserve line (if the budget made one) and what is left of the reserve.

    With a reserve budget line, draws are counted on it; without one, the
    year's reserve as set on the fiscal year, less its reserve draws.
    """
    line = session.execute(
        select(BudgetLine.id, BudgetLine.amount_fen).where(
            BudgetLine.fiscal_year == year, BudgetLine.is_reserve.is_(True)
        )
    ).first()
    drawn = select(func.coalesce(func.sum(LedgerEntry.amount_fen), 0))
    if line is not None:
        used = session.scalar(drawn.where(LedgerEntry.line_id == line.id))
        return line.id, line.amount_fen - int(used or 0)
    reserve_fen = session.scalar(select(FiscalYear.reserve_fen).where(FiscalYear.year == year))
    if reserve_fen is None:
        raise NotFound(
            f"no fiscal year {year} with an emergency reserve",
            field="fiscal_year",
            allowed="set the year's budget first",
        )
    used = session.scalar(
        drawn.where(LedgerEntry.fiscal_year == year, LedgerEntry.kind == LedgerKind.reserve_draw)
    )
    return None, reserve_fen - int(used or 0)


def close_with_follow_up(
    session: Session, ctx: Context, public_id: str, *, actor: str
) -> EmergencyState:
    """End the emergency in an issue of the closed loop (SPEC §5) for follow-up and evaluation.

    A drill closes without an issue: its drill report is its follow-up.
    """
    emergency = get_emergency(session, public_id, lock=True)
    if emergency.status == EmergencyStatus.closed:
        return state(session, public_id)
    if emergency.status != EmergencyStatus.resolved:
        raise IllegalTransition(
            f"the emergency is {emergency.status.value}; resolve it before closing",
            field="status",
            allowed="resolved",
        )
    now = ctx.now()
    issue_number = None
    if not emergency.is_drill:
        rule = ctx.policy.emergency.follow_up
        result = report_issue(
            session,
            ctx,
            ReportIssueForm(
                title=f"应急 {emergency.level.value} 级 follow-up: {emergency.title}"[:300],
                description=(
                    f"Follow-up of emergency {emergency.public_id} (level {emergency.level.value}, "
                    f"source {emergency.source}), opened {emergency.opened_at.isoformat()}, "
                    f"resolved {emergency.resolved_at.isoformat() if emergency.resolved_at else '-'}."
                    f"\n\n{emergency.description}"
                )[:20_000],
                reporting_unit=rule.reporting_unit,
                category=rule.category,
                classification=emergency.classification,
            ),
            actor=actor,
            key=f"emergency:{emergency.public_id}:follow-up",
            origin="emergency",
            origin_ref=emergency.public_id,
        )
        emergency.follow_up_issue_id = result.issue_id
        issue_number = result.issue_number
    emergency.status = EmergencyStatus.closed
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="emergency.closed",
        subject_type="emergency",
        subject_id=emergency.public_id,
        classification=emergency.classification,
        is_drill=emergency.is_drill,
        payload={"follow_up_issue": issue_number},
    )
    session.flush()
    return state(session, public_id)


def _minutes(start: dt.datetime, end: dt.datetime) -> float:
    return round((end - start).total_seconds() / 60, 2)
