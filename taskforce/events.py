"""One call per state change: its trail entry and the notifications it causes,
in the caller's transaction (ARCHITECTURE.md rule 1)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from taskforce import trail
from taskforce.notify.outbox import enqueue, enqueue_many
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


_TRAIL_KEYS = (
    "at",
    "actor",
    "action",
    "subject_type",
    "subject_id",
    "payload",
    "classification",
    "calendar_fallback",
)


def record_many(session: Session, policy: Policy, records: list[dict[str, Any]]) -> list[int]:
    """`record` for many state changes of one transaction, set-based: one head lock and one
    bulk INSERT for the trail, one for the outbox. Each dict takes `record`'s keyword
    arguments; the trail entries are appended in list order. Returns their ids."""
    ids = trail.append_many(
        session,
        [
            {k: r[k] for k in _TRAIL_KEYS if k in r} | {"payload": r.get("payload") or {}}
            for r in records
        ],
    )
    enqueue_many(
        session,
        [
            {
                "event_kind": r["notify"],
                "key": f"trail:{entry_id}:{r['notify']}",
                "subject_type": r["subject_type"],
                "subject_id": r["subject_id"],
                "classification": r.get("classification", Classification.internal),
                "context": r.get("context") or {},
                "at": r["at"],
                "routing": policy.notifications,
                "audiences": r.get("audiences"),
                "is_drill": r.get("is_drill", False),
                "priority": r.get("priority", 0),
                "trail_entry_id": entry_id,
            }
            for r, entry_id in zip(records, ids, strict=True)
            if r.get("notify")
        ],
        # Every key names a trail entry appended just above, in this transaction: no stored
        # row can have it, so the existence check (a SELECT per 30,000 keys) is skipped.
        keys_are_new=True,
    )
    return ids
