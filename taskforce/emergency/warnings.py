"""Warnings (预警, SPEC §5): yellow 关注级, orange 警示级, red 危急级.

Raised manually, by the dispatch sweep, by the loop (an issue returned too
often) or by a risk crossing its threshold. Each cause raises its warning
once: the dedup key is unique.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.context import Context
from taskforce.emergency.models import EarlyWarning, WarningColour, WarningStatus
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
        at=now,
        actor=actor,
        action="warning.raised",
        subject_type="warning",
        subject_id=warning.id,
        classification=classification,
        notify="warning_raised",
        payload={
            "colour": colour.value,
            "source": source,
            "subject": f"{subject_type}:{subject_id}",
            "title": title,
            "deadline_at": warning.deadline_at,
        },
        context={
            "colour": colour.value,
            "colour_zh": rule.name_zh,
            "title": title,
            "deadline_at": warning.deadline_at.isoformat(),
            "handled_by": rule.handled_by,
        },
        is_drill=is_drill,
    )
    return warning
