"""Level deadlines (SPEC §5): I — leadership reported within 2 h, command formed within
24 h; II — solution within 48 h. Names and hours are config (emergency.levels).

A deadline is met by paging a group (emergency.deadlines_met_by_page), by an
operator's record, or by the emergency's resolution; one that passes unmet is
escalated once. A deadline "within N h" (以内) counts its last instant as in time.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.clock import local_minute
from taskforce.context import Context
from taskforce.emergency.models import Emergency, EmergencyEvent
from taskforce.emergency.queries import OPEN_STATUSES, get_emergency
from taskforce.errors import DomainError


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


def mark_deadline_met(
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


def mark_deadlines_met(
    session: Session,
    ctx: Context,
    marks: list[tuple[Emergency, str, str]],
    *,
    actor: str,
) -> list[bool]:
    """`mark_deadline_met` for many (emergency, name, how), set-based: one read of their
    marks, one bulk trail append (the first pages of a batch meet their deadlines here)."""
    session.flush()
    known = _deadline_events(session, [e.id for e, _name, _how in marks])
    now = ctx.now()
    done: list[bool] = []
    records = []
    for emergency, name, how in marks:
        if name not in emergency.deadlines or known.get(emergency.id, {}).get(name) == "met":
            done.append(False)
            continue
        known.setdefault(emergency.id, {})[name] = "met"
        due = dt.datetime.fromisoformat(emergency.deadlines[name])
        detail = {"name": name, "how": how, "due_at": due.isoformat(), "in_time": now <= due}
        session.add(
            EmergencyEvent(
                emergency_id=emergency.id, kind="deadline_met", at=now, actor=actor, detail=detail
            )
        )
        records.append(
            {
                "at": now,
                "actor": actor,
                "action": "emergency.deadline_met",
                "subject_type": "emergency",
                "subject_id": emergency.public_id,
                "classification": emergency.classification,
                "is_drill": emergency.is_drill,
                "payload": detail,
            }
        )
        done.append(True)
    if records:
        events.record_many(session, ctx.policy, records)
    return done


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
    return mark_deadline_met(session, ctx, emergency, name, actor=actor, how=note or "recorded")


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
                "deadline": name,
                "due": local_minute(
                    dt.datetime.fromisoformat(emergency.deadlines[name]), ctx.policy.timezone
                ),
                "reason": f"deadline {name} missed",
                "summary": f"deadline {name} due {emergency.deadlines[name]} missed",
                "is_drill": emergency.is_drill,
            },
        )
    return [(public_id, name) for _, public_id, name in due]
