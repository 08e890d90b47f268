"""Warnings (预警, SPEC §5): yellow 关注级, orange 警示级, red 危急级.

Raised manually, by the dispatch sweep, by the loop (an issue returned too
often) or by a risk crossing its threshold. Each cause raises its warning
once: the dedup key is unique.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from taskforce import bulk, events
from taskforce.clock import local_minute
from taskforce.context import Context
from taskforce.emergency.models import EarlyWarning, WarningColour, WarningStatus
from taskforce.errors import DomainError, NotFound
from taskforce.org.models import Group, Member
from taskforce.org.service import active_member, listed_codes, not_cleared
from taskforce.policy.schema import Classification, GroupKind


def deadline_after(rule, raised_at: dt.datetime) -> dt.datetime:
    """When a warning raised at `raised_at` must be handled by (its colour's rule), in UTC."""
    return (raised_at + dt.timedelta(hours=rule.deadline_hours)).astimezone(dt.UTC)


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
        deadline_at=deadline_after(rule, now),
        status=WarningStatus.open,
    )
    session.add(warning)
    session.flush()
    events.record(
        session,
        ctx.policy,
        **_raised_event(
            warning, rule, source, subject_type, subject_id, actor, is_drill, ctx.policy.timezone
        ),
    )
    return warning


def _raised_event(
    warning: EarlyWarning, rule, source, subject_type, subject_id, actor, is_drill, timezone
) -> dict:
    """The `warning.raised` event of a new warning, as `events.record` keyword arguments."""
    return _raised_event_of(
        warning.id,
        WarningColour(warning.colour),
        warning.title,
        warning.classification,
        warning.raised_at,
        warning.deadline_at,
        rule,
        source,
        subject_type,
        subject_id,
        actor,
        is_drill,
        timezone,
    )


def _raised_event_of(
    warning_id: int,
    colour: WarningColour,
    title: str,
    classification,
    raised_at: dt.datetime,
    deadline_at: dt.datetime,
    rule,
    source,
    subject_type,
    subject_id,
    actor,
    is_drill,
    timezone: str,
) -> dict:
    return {
        "at": raised_at,
        "actor": actor,
        "action": "warning.raised",
        "subject_type": "warning",
        "subject_id": warning_id,
        "classification": classification,
        "notify": "warning_raised",
        "payload": {
            "colour": colour.value,
            "source": source,
            "subject": f"{subject_type}:{subject_id}",
            "title": title,
            "deadline_at": deadline_at,
        },
        "context": {
            "colour": colour.value,
            "colour_zh": rule.name_zh,
            "title": title,
            "deadline_at": deadline_at.isoformat(),
            "deadline": local_minute(deadline_at, timezone),  # as the message shows it
            "handled_by": rule.handled_by,
            # The group that must act, for routing ("{handler}"): handled_by when it is a
            # group; a red warning's command is formed by the group that may handle it.
            "handler": rule.handled_by
            if rule.handled_by in rule.may_handle
            else rule.may_handle[0],
        },
        "is_drill": is_drill,
    }


_KEY_CHUNK = 30_000  # keys per IN (...) list: SQLite's bound-parameter limit is 32,766

_INSERT_COLUMNS = (
    "dedup_key",
    "colour",
    "source",
    "subject_type",
    "subject_id",
    "title",
    "handled_by",
    "classification",
    "raised_at",
    "deadline_at",
    "status",
)


def raise_warnings(session: Session, ctx: Context, requests: list[dict]) -> list[int]:
    """`raise_warning` for many causes at once: one existence check, one bulk INSERT of the
    new warnings, one `events.record_many` (a `warning.raised` entry and notice each). (The
    dispatch sweep announces its warnings in its digests instead: `insert_warnings`.)
    Each dict takes `raise_warning`'s keyword arguments. Returns the new warnings' ids, in
    request order (ids, not ORM objects: building thousands of them was a visible share of
    a sweep; load the objects with `session.get` where they are needed)."""
    made = _insert_new(session, ctx, requests)
    events.record_many(
        session,
        ctx.policy,
        [
            _raised_event_of(
                new.id,
                new.colour,
                new.request["title"],
                new.classification,
                new.raised_at,
                new.deadline,
                new.rule,
                new.request["source"],
                new.request["subject_type"],
                new.request["subject_id"],
                new.request.get("actor", "system"),
                new.request.get("is_drill", False),
                ctx.policy.timezone,
            )
            for new in made
        ],
    )
    return [new.id for new in made]


def insert_warnings(session: Session, ctx: Context, requests: list[dict]) -> dict[str, int]:
    """The warnings of `raise_warnings` without their own trail entries and notices, for a
    caller whose one event announces them all (the dispatch sweep's escalation digest, which
    lists their ids). Returns the new warnings' ids by dedup key; a cause already warned is
    left out."""
    return {new.request["dedup_key"]: new.id for new in _insert_new(session, ctx, requests)}


class _NewWarning(NamedTuple):
    id: int
    request: dict
    rule: object
    colour: WarningColour
    classification: Classification
    raised_at: dt.datetime
    deadline: dt.datetime


def _insert_new(session: Session, ctx: Context, requests: list[dict]) -> list[_NewWarning]:
    """Insert the warnings whose dedup key is new (one existence check, one bulk INSERT)."""
    keys = [r["dedup_key"] for r in requests]
    existing: set[str] = set()
    for among in bulk.member_clauses(session, EarlyWarning.dedup_key, keys, _KEY_CHUNK):
        existing.update(session.scalars(select(EarlyWarning.dedup_key).where(among)))
    now = ctx.now()
    sqlite = bulk.is_sqlite(session)
    raised_at = bulk.stored_time(now, sqlite)
    deadlines: dict[WarningColour, tuple[dt.datetime, object]] = {}
    wanted: list[tuple[tuple, dict, object, WarningColour, Classification, dt.datetime]] = []
    for r in requests:
        if r["dedup_key"] in existing:
            continue
        existing.add(r["dedup_key"])
        colour = WarningColour(r["colour"])
        rule = getattr(ctx.policy.warnings, colour.value)
        if colour not in deadlines:
            # In UTC, as the old path read it back from the database (the event's context
            # carries its ISO text).
            deadline = deadline_after(rule, now)
            deadlines[colour] = (deadline, bulk.stored_time(deadline, sqlite))
        deadline, stored_deadline = deadlines[colour]
        classification = Classification(r.get("classification", Classification.internal))
        row = (
            r["dedup_key"],
            colour.value,
            r["source"],
            r["subject_type"],
            str(r["subject_id"]),
            r["title"],
            rule.handled_by,
            classification.value,
            raised_at,
            stored_deadline,
            WarningStatus.open.value,
        )
        wanted.append((row, r, rule, colour, classification, deadline))
    if not wanted:
        return []
    # Through the driver in bulk (taskforce/bulk.py), then the new ids by their unique dedup
    # keys: an INSERT … RETURNING of ORM objects cost more than the rest of the warnings.
    bulk.insert_many(session, EarlyWarning.__tablename__, _INSERT_COLUMNS, [w[0] for w in wanted])
    new_keys = [row[0] for row, *_ in wanted]
    ids: dict[str, int] = {}
    for among in bulk.member_clauses(session, EarlyWarning.dedup_key, new_keys, _KEY_CHUNK):
        ids.update(
            (key, warning_id)
            for key, warning_id in session.execute(
                select(EarlyWarning.dedup_key, EarlyWarning.id).where(among)
            )
        )
    return [
        _NewWarning(ids[row[0]], r, rule, colour, classification, now, deadline)
        for row, r, rule, colour, classification, deadline in wanted
    ]


def handle_warning(
    session: Session, ctx: Context, warning_id: int, *, actor: str, note: str = ""
) -> EarlyWarning:
    """The handling group has acted (plan made, resources coordinated, decision taken)."""
    warning = session.scalars(
        select(EarlyWarning).where(EarlyWarning.id == warning_id).with_for_update()
    ).one_or_none()
    if warning is None:
        raise NotFound(
            f"no warning {warning_id}",
            field="warning_id",
            allowed="a warning's number, as raise-warning's log and its notice give it",
        )
    _check_handler(session, ctx, warning, actor)
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


def _check_handler(session: Session, ctx: Context, warning: EarlyWarning, actor: str) -> None:
    """Handling stops the escalation, so only a member of a group that may handle the
    warning's colour does it (config warnings.<colour>.may_handle; SPEC §5), and only one
    cleared for the warning (config/org.yaml clearance): not what one may not read."""
    member = active_member(session, actor, field="actor")
    kind = session.scalar(select(Group.kind).where(Group.id == member.group_id))
    allowed = getattr(ctx.policy.warnings, warning.colour.value).may_handle
    if kind is not None and GroupKind(kind).value in allowed:
        if warning.classification.readable_by(member.clearance):
            return
        raise DomainError(
            f"{actor} may not handle warning {warning.id}: "
            + not_cleared(member, "warning", warning.classification),
            field="actor",
            allowed=f"a member of the {' or '.join(allowed)} group cleared for "
            f"{warning.classification.value}",
        )
    codes = listed_codes(
        session,
        select(Member.code)
        .join(Group, Group.id == Member.group_id)
        .where(Group.kind.in_(allowed), Member.active.is_(True))
        .order_by(Member.code),
    )
    raise DomainError(
        f"{actor} may not handle warning {warning.id} ({warning.colour.value}): it is handled by the "
        f"{' or '.join(allowed)} group (config warnings.{warning.colour.value}.may_handle)",
        field="actor",
        allowed=f"a member of the {' or '.join(allowed)} group: {codes}",
    )


def settle_warnings(
    session: Session,
    ctx: Context,
    subject_type: str,
    subject_ids: list[str | int],
    *,
    reason: str,
    actor: str,
    colours: list[WarningColour | str] | None = None,
    source: str | None = None,
) -> list[int]:
    """Close the warnings whose cause is gone: the action item completed, the issue closed,
    a risk's score fell below their threshold.

    Open and escalated warnings of these subjects (only of these `colours`, and only those
    raised by `source`, when given) are marked handled at this instant (in
    time if before their deadline, as the KPIs count them) with a `warning.settled` trail
    entry naming the reason. No message: nobody has anything left to do. Without this, a
    warning outlived its subject and was reported late forever (预警按时处置率)."""
    now = ctx.now()
    among = []
    if colours is not None:
        among.append(EarlyWarning.colour.in_([WarningColour(c) for c in colours]))
    if source is not None:
        among.append(EarlyWarning.source == source)
    warnings = [
        warning
        for chunk in bulk.chunks([str(i) for i in subject_ids])  # an issue's thousands of items
        for warning in session.scalars(
            select(EarlyWarning)
            .where(
                EarlyWarning.subject_type == subject_type,
                EarlyWarning.subject_id.in_(chunk),
                EarlyWarning.status.in_([WarningStatus.open, WarningStatus.escalated]),
                *among,
            )
            .order_by(EarlyWarning.id)
            .with_for_update()
        )
    ]
    for warning in warnings:
        was = warning.status
        warning.status, warning.handled_at = WarningStatus.handled, now
        events.record(
            session,
            ctx.policy,
            at=now,
            actor=actor,
            action="warning.settled",
            subject_type="warning",
            subject_id=warning.id,
            classification=warning.classification,
            payload={
                "reason": reason,
                "subject": f"{subject_type}:{warning.subject_id}",
                "was": WarningStatus(was).value,
                "late": now > warning.deadline_at,
            },
        )
    session.flush()
    return [w.id for w in warnings]


def _escalated_event(r, rule, now: dt.datetime, timezone: str) -> dict:
    """The `warning.escalated` event of a warning row, as `events.record` keyword arguments."""
    colour = WarningColour(r.colour).value
    return {
        "at": now,
        "actor": "system",
        "action": "warning.escalated",
        "subject_type": "warning",
        "subject_id": r.id,
        "classification": r.classification,
        "notify": "warning_escalated",
        "payload": {
            "colour": colour,
            "handled_by": r.handled_by,
            "deadline_at": r.deadline_at,
            "hours": rule.deadline_hours,
        },
        "context": {
            "colour": colour,
            "colour_zh": rule.name_zh,
            "title": r.title,
            "handled_by": r.handled_by,
            "deadline_at": r.deadline_at.isoformat(),
            "deadline": local_minute(r.deadline_at, timezone),
            "summary": f"{rule.name_zh}: not handled by {r.handled_by} within "
            f"{rule.deadline_hours} h",
        },
    }


def escalate_overdue_warnings(session: Session, ctx: Context) -> list[int]:
    """Escalate every open warning past its deadline (48 h / 72 h / 24 h), once.

    The due warnings are read in one query and marked escalated in bulk; each gets its
    trail entry, written set-based (events.record_many). A warning escalated alone gets its
    own message; several of one colour and classification share one digest message.
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
    # In chunks: SQLite's default build refuses more than 32,766 bound parameters, and a
    # weekly sweep can raise ten thousand warnings that nobody handles in time.
    for chunk in bulk.chunks(ids, _KEY_CHUNK):
        session.execute(
            update(EarlyWarning)
            .where(EarlyWarning.id.in_(chunk), EarlyWarning.status == WarningStatus.open)
            .values(status=WarningStatus.escalated, escalated_at=now)
            .execution_options(synchronize_session=False)
        )
    rules = {colour: getattr(ctx.policy.warnings, colour.value) for colour in WarningColour}
    groups: dict[tuple[WarningColour, Classification], list] = {}
    for r in rows:
        groups.setdefault((WarningColour(r.colour), Classification(r.classification)), []).append(r)
    records: list[dict] = []
    for (colour, classification), group in sorted(
        groups.items(), key=lambda kv: (list(WarningColour).index(kv[0][0]), kv[0][1].value)
    ):
        rule = rules[colour]
        events_of = [_escalated_event(r, rule, now, ctx.policy.timezone) for r in group]
        if len(group) == 1:  # a warning alone: its own message
            records += events_of
            continue
        # Many at once (a sweep's orange warnings, three days on): each keeps its trail entry,
        # and one message per colour and classification names them, as the sweep's digests do.
        records += [event | {"notify": None} for event in events_of]
        records.append(_escalated_digest(ctx, group, colour, classification, rule, now))
    events.record_many(session, ctx.policy, records)
    return ids


def _escalated_digest(ctx: Context, group: list, colour, classification, rule, now) -> dict:
    shown = ctx.policy.notifications.digest_items
    return {
        "at": now,
        "actor": "system",
        "action": "warnings.escalated",
        "subject_type": "warning",
        "subject_id": f"{colour.value} ×{len(group)}",
        "classification": classification,
        "notify": "warnings_escalated",
        "payload": {
            "colour": colour.value,
            "handled_by": rule.handled_by,
            "hours": rule.deadline_hours,
            "warnings": [r.id for r in group],
        },
        "context": {
            "colour": colour.value,
            "colour_zh": rule.name_zh,
            "handled_by": rule.handled_by,
            "hours": rule.deadline_hours,
            "count": len(group),
            "items": [{"id": r.id, "title": r.title} for r in group[:shown]],
            "more": max(len(group) - shown, 0),
        },
    }
