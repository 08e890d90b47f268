"""Warnings (预警, SPEC §5): yellow 关注级, orange 警示级, red 危急级.

Raised manually, by the dispatch sweep, by the loop (an issue returned too
often) or by a risk crossing its threshold. Each cause raises its warning
once: the dedup key is unique.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.context import Context
from taskforce.emergency.models import EarlyWarning, WarningColour, WarningStatus
from taskforce.errors import NotFound
from taskforce.policy.schema import Classification


def raise_warning(
    session: Session,
    ctx: Context,
    *,
    colour: WarningColour | str,
    source: str,
    subject_type: str,
    subject_id: str | int,
    title: str,
    dedup_key: str,
    actor: str = "system",
    classification: Classification = Classification.internal,
    is_drill: bool = False,
) -> EarlyWarning | None:
    """Raise a warning unless this cause raised one already; returns the new warning or None."""
    exists = session.scalar(select(EarlyWarning.id).where(EarlyWarning.dedup_key == dedup_key))
    if exists is not None:
        return None
    colour = WarningColour(colour)
    rule = getattr(ctx.policy.warnings, colour.value)
    now = ctx.now()
    warning = EarlyWarning(
        dedup_key=dedup_key,
        colour=colour,
        source=source,
        subject_type=subject_type,
        subject_id=str(subject_id),
        title=title,
        handled_by=rule.handled_by,
        classification=classification,
        raised_at=now,
        deadline_at=now + dt.timedelta(hours=rule.deadline_hours),
        status=WarningStatus.open,
    )
    session.add(warning)
    session.flush()
    events.record(
        session,
        ctx.policy,
        **_raised_event(warning, rule, source, subject_type, subject_id, actor, is_drill),
    )
    return warning


def _raised_event(
    warning: EarlyWarning, rule, source, subject_type, subject_id, actor, is_drill
) -> dict:
    """The `warning.raised` event of a new warning, as `events.record` keyword arguments."""
    colour = WarningColour(warning.colour)
    return {
        "at": warning.raised_at,
        "actor": actor,
        "action": "warning.raised",
        "subject_type": "warning",
        "subject_id": warning.id,
        "classification": warning.classification,
        "notify": "warning_raised",
        "payload": {
            "colour": colour.value,
            "source": source,
            "subject": f"{subject_type}:{subject_id}",
            "title": warning.title,
            "deadline_at": warning.deadline_at,
        },
        "context": {
            "colour": colour.value,
            "colour_zh": rule.name_zh,
            "title": warning.title,
            "deadline_at": warning.deadline_at.isoformat(),
            "handled_by": rule.handled_by,
        },
        "is_drill": is_drill,
    }


def raise_warnings(session: Session, ctx: Context, requests: list[dict]) -> list[EarlyWarning]:
    """`raise_warning` for many causes at once (the dispatch sweep's escalations): one
    existence check, one flush of the new warnings, one `events.record_many`.
    Each dict takes `raise_warning`'s keyword arguments."""
    keys = [r["dedup_key"] for r in requests]
    existing: set[str] = set()
    for start in range(0, len(keys), 30_000):
        existing.update(
            session.scalars(
                select(EarlyWarning.dedup_key).where(
                    EarlyWarning.dedup_key.in_(keys[start : start + 30_000])
                )
            )
        )
    now = ctx.now()
    wanted: list[tuple[dict, dict, object]] = []
    for r in requests:
        if r["dedup_key"] in existing:
            continue
        existing.add(r["dedup_key"])
        colour = WarningColour(r["colour"])
        rule = getattr(ctx.policy.warnings, colour.value)
        row = {
            "dedup_key": r["dedup_key"],
            "colour": colour,
            "source": r["source"],
            "subject_type": r["subject_type"],
            "subject_id": str(r["subject_id"]),
            "title": r["title"],
            "handled_by": rule.handled_by,
            "classification": r.get("classification", Classification.internal),
            "raised_at": now,
            "deadline_at": now + dt.timedelta(hours=rule.deadline_hours),
            "status": WarningStatus.open,
        }
        wanted.append((row, r, rule))
    # One bulk INSERT … RETURNING (batched by SQLAlchemy) instead of a unit-of-work flush of
    # one object per warning: the sweep raises thousands at once.
    created = (
        list(
            session.scalars(
                insert(EarlyWarning).returning(EarlyWarning, sort_by_parameter_order=True),
                [row for row, _, _ in wanted],
            )
        )
        if wanted
        else []
    )
    made = [(w, r, rule) for w, (_, r, rule) in zip(created, wanted, strict=True)]
    events.record_many(
        session,
        ctx.policy,
        [
            _raised_event(
                w,
                rule,
                r["source"],
                r["subject_type"],
                r["subject_id"],
                r.get("actor", "system"),
                r.get("is_drill", False),
            )
            for w, r, rule in made
        ],
    )
    return [w for w, _, _ in made]


def handle_warning(
    session: Session, ctx: Context, warning_id: int, *, actor: str, note: str = ""
) -> EarlyWarning:
    """The handling group has acted (plan made, resources coordinated, decision taken)."""
    warning = session.scalars(
        select(EarlyWarning).where(EarlyWarning.id == warning_id).with_for_update()
    ).one_or_none()
    if warning is None:
        raise NotFound(f"no warning {warning_id}", field="warning_id")
    if warning.status == WarningStatus.handled:
        return warning
    now = ctx.now()
    late = now > warning.deadline_at
    warning.status = WarningStatus.handled
    warning.handled_at = now
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="warning.handled",
        subject_type="warning",
        subject_id=warning.id,
        classification=warning.classification,
        payload={"note": note, "late": late, "deadline_at": warning.deadline_at},
    )
    session.flush()
    return warning


def escalate_overdue_warnings(session: Session, ctx: Context) -> list[int]:
    """Escalate every open warning past its deadline (48 h / 72 h / 24 h), once.

    The due warnings are read in one query and marked escalated in one UPDATE;
    each gets its trail entry and notification.
    """
    now = ctx.now()
    rows = session.execute(
        select(
            EarlyWarning.id,
            EarlyWarning.colour,
            EarlyWarning.title,
            EarlyWarning.handled_by,
            EarlyWarning.deadline_at,
            EarlyWarning.classification,
        )
        .where(EarlyWarning.status == WarningStatus.open, EarlyWarning.deadline_at < now)
        .order_by(EarlyWarning.deadline_at, EarlyWarning.id)
        .with_for_update()
    ).all()
    if not rows:
        return []
    ids = [r.id for r in rows]
    session.execute(
        update(EarlyWarning)
        .where(EarlyWarning.id.in_(ids), EarlyWarning.status == WarningStatus.open)
        .values(status=WarningStatus.escalated, escalated_at=now)
        .execution_options(synchronize_session=False)
    )
    for r in rows:
        rule = getattr(ctx.policy.warnings, WarningColour(r.colour).value)
        events.record(
            session,
            ctx.policy,
            at=now,
            actor="system",
            action="warning.escalated",
            subject_type="warning",
            subject_id=r.id,
            classification=r.classification,
            notify="warning_escalated",
            payload={
                "colour": WarningColour(r.colour).value,
                "handled_by": r.handled_by,
                "deadline_at": r.deadline_at,
                "hours": rule.deadline_hours,
            },
            context={
                "colour": WarningColour(r.colour).value,
                "colour_zh": rule.name_zh,
                "title": r.title,
                "handled_by": r.handled_by,
                "deadline_at": r.deadline_at.isoformat(),
                "summary": f"{rule.name_zh}: not handled by {r.handled_by} within "
                f"{rule.deadline_hours} h",
            },
        )
    return ids
