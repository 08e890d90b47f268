"""Write notifications to the outbox inside the event's own transaction.

Delivery (through Apprise) happens after commit, from these rows; see
taskforce/notify/delivery.py. A row's idempotency key makes a replayed event
write nothing new.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskforce.bulk import TimeCache, insert_many, is_sqlite, stored_json
from taskforce.notify.models import DeliveryStatus, OutboxMessage
from taskforce.policy.schema import Classification, Notifications


class RoutingError(LookupError):
    pass


def audiences_for(event_kind: str, routing: Notifications, context: dict[str, Any]) -> list[str]:
    """Resolve an event kind's audiences; placeholders come from the event's context."""
    if event_kind not in routing.routing:
        raise RoutingError(
            f"no routing for event kind {event_kind!r}: add it to notifications.routing in config/taskforce.yaml"
        )
    out: list[str] = []
    for tag in routing.routing[event_kind]:
        values = [tag]
        if tag.startswith("{") and tag.endswith("}"):
            value = context.get(tag[1:-1])
            # nothing concerned (an issue without a working group), one group, or several
            values = [str(v) for v in value] if isinstance(value, list | tuple) else [value]
        for one in values:
            if one and str(one) not in out:
                out.append(str(one))
    return out


def enqueue(
    session: Session,
    *,
    event_kind: str,
    key: str,
    subject_type: str,
    subject_id: str | int,
    classification: Classification,
    context: dict[str, Any],
    at: dt.datetime,
    routing: Notifications,
    audiences: Iterable[str] | None = None,
    is_drill: bool = False,
    priority: int = 0,
    trail_entry_id: int | None = None,
) -> list[OutboxMessage]:
    """One outbox row per audience; rows whose key exists already are not written again."""
    targets = (
        list(audiences) if audiences is not None else audiences_for(event_kind, routing, context)
    )
    keys = {f"{key}:{aud}": aud for aud in targets}
    existing = (
        set(
            session.execute(
                select(OutboxMessage.idempotency_key).where(OutboxMessage.idempotency_key.in_(keys))
            ).scalars()
        )
        if keys
        else set()
    )
    rows = [
        OutboxMessage(
            idempotency_key=k,
            event_kind=event_kind,
            audience=aud,
            subject_type=subject_type,
            subject_id=str(subject_id),
            classification=classification,
            context=context,
            is_drill=is_drill,
            priority=priority,
            status=DeliveryStatus.pending,
            attempts=0,
            created_at=at,
            next_attempt_at=at,
            trail_entry_id=trail_entry_id,
        )
        for k, aud in keys.items()
        if k not in existing
    ]
    session.add_all(rows)
    return rows


def ids_for_trail_entries(session: Session, trail_entry_ids: Iterable[int]) -> list[int]:
    """The outbox rows a state change wrote (events.record links them to its trail entry)."""
    wanted = list(trail_entry_ids)
    found: list[int] = []
    for start in range(0, len(wanted), _KEY_CHUNK):  # SQLite's bound-parameter limit
        found += session.scalars(
            select(OutboxMessage.id).where(
                OutboxMessage.trail_entry_id.in_(wanted[start : start + _KEY_CHUNK])
            )
        )
    return sorted(found)


# Keys per IN (...) list (SQLite's default limit is 32,766 bound parameters).
_KEY_CHUNK = 30_000


def enqueue_many(
    session: Session, requests: list[dict[str, Any]], *, keys_are_new: bool = False
) -> int:
    """`enqueue` for many events at once: one existence check, one bulk INSERT.

    Each dict takes `enqueue`'s keyword arguments. Returns the number of rows written.
    `keys_are_new`: the caller vouches that no stored row can have any of these keys (each key
    derives from a trail entry appended in this same transaction, as `events.record_many`'s
    do), so the existence check is skipped: it could find nothing.
    """
    sqlite = is_sqlite(session)
    stored = TimeCache(sqlite)
    # A context's JSON once per dict: every audience of an event (and events sharing one
    # context dict, like an item's turned-red pair) store the same text.
    texts: dict[int, str] = {}
    wanted: dict[str, tuple] = {}
    for r in requests:
        audiences = r.get("audiences")
        context = r["context"]
        targets = (
            list(audiences)
            if audiences is not None
            else audiences_for(r["event_kind"], r["routing"], context)
        )
        if not targets:
            continue
        if (text := texts.get(id(context))) is None:
            text = texts[id(context)] = stored_json(context)
        at = stored(r["at"])
        common = (
            r["event_kind"],
            str(r["subject_id"]),
            r["subject_type"],
            _LEVELS.get(r["classification"]) or Classification(r["classification"]).value,
            text,
            bool(r.get("is_drill", False)),
            r.get("priority", 0),
            at,
            r.get("trail_entry_id"),
        )
        for aud in targets:
            key = f"{r['key']}:{aud}"
            if key not in wanted:
                wanted[key] = (key, aud, *common)
    existing: set[str] = set()
    if not keys_are_new:
        keys = list(wanted)
        for start in range(0, len(keys), _KEY_CHUNK):
            chunk = keys[start : start + _KEY_CHUNK]
            existing.update(
                session.scalars(
                    select(OutboxMessage.idempotency_key).where(
                        OutboxMessage.idempotency_key.in_(chunk)
                    )
                )
            )
    pending = DeliveryStatus.pending.value
    rows = [
        (key, kind, aud, stype, sid, cls, text, drill, prio, pending, 0, at, at, trail_id)
        for key, aud, kind, sid, stype, cls, text, drill, prio, at, trail_id in wanted.values()
        if key not in existing
    ]
    # Through the driver in bulk, values as the column types store them (taskforce/bulk.py).
    insert_many(session, OutboxMessage.__tablename__, _INSERT_COLUMNS, rows)
    return len(rows)


# Classification values by member or value: a dict lookup per event, not an Enum call.
_LEVELS = {c.value: c.value for c in Classification}

_INSERT_COLUMNS = (
    "idempotency_key",
    "event_kind",
    "audience",
    "subject_type",
    "subject_id",
    "classification",
    "context",
    "is_drill",
    "priority",
    "status",
    "attempts",
    "created_at",
    "next_attempt_at",
    "trail_entry_id",
)
