"""One call per state change: its trail entry and the notifications it causes,
in the caller's transaction (ARCHITECTURE.md rule 1)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from taskforce import trail
from taskforce.notify.outbox import enqueue
from taskforce.policy.schema import Classification, Policy
from taskforce.trail.models import TrailEntry


def record(
    session: Session,
    policy: Policy,
    *,
    at: dt.datetime,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str | int,
    payload: dict[str, Any] | None = None,
    classification: Classification = Classification.internal,
    calendar_fallback: bool = False,
    notify: str | None = None,
    context: dict[str, Any] | None = None,
    audiences: list[str] | None = None,
    is_drill: bool = False,
    priority: int = 0,
) -> TrailEntry:
    entry = trail.append(
        session,
        at=at,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        payload=payload or {},
        classification=classification,
        calendar_fallback=calendar_fallback,
    )
    if notify:
        enqueue(
            session,
            event_kind=notify,
            key=f"trail:{entry.id}:{notify}",
            subject_type=subject_type,
            subject_id=subject_id,
            classification=classification,
            context=context or {},
            at=at,
            routing=policy.notifications,
            audiences=audiences,
            is_drill=is_drill,
            priority=priority,
            trail_entry_id=entry.id,
        )
    return entry
