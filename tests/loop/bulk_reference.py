"""The write paths as they were before they went through the DBAPI (commit c01d6b1): the
reference the bulk writes are compared with (tests/loop/test_bulk_writes.py). Kept verbatim
apart from names: SQLAlchemy Core executemany and ORM INSERT … RETURNING, typed reads."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import String, bindparam, insert, select, type_coerce, update
from sqlalchemy.orm import Session

from taskforce.context import Context
from taskforce.emergency.models import EarlyWarning, WarningColour, WarningStatus
from taskforce.emergency.warnings import _raised_event
from taskforce.loop.colours import next_red_step_days
from taskforce.loop.models import Issue, Stage, TaskLevel, TaskNode
from taskforce.loop.sweep import (
    _TIME_COLUMNS,
    _days,
    _driver_days,
    _driver_times,
)
from taskforce.notify.models import DeliveryStatus, OutboxMessage
from taskforce.notify.outbox import audiences_for
from taskforce.policy.schema import Classification
from taskforce.trail.models import TrailEntry, TrailHead
from taskforce.trail.service import _entry_bytes, canonical_json, compute_hash

_HEAD_FOR_UPDATE = (
    select(TrailHead.last_id, TrailHead.last_hash).where(TrailHead.id == 1).with_for_update()
)
_HEAD_UPDATE = (
    update(TrailHead.__table__)
    .where(TrailHead.__table__.c.id == 1)
    .values(last_id=bindparam("last_id"), last_hash=bindparam("last_hash"))
)


def append_many(session: Session, entries: list[dict[str, Any]]) -> list[int]:
    if not entries:
        return []
    head = session.execute(_HEAD_FOR_UPDATE).one_or_none()
    prev, entry_id, rows = head.last_hash, head.last_id, []
    for e in entries:
        entry_id += 1
        at = e["at"].astimezone(dt.UTC)
        payload = e.get("payload")
        text = canonical_json(payload if payload is not None else {})
        classification = Classification(e.get("classification", Classification.internal))
        fallback = bool(e.get("calendar_fallback", False))
        subject_id = str(e["subject_id"])
        body = _entry_bytes(
            entry_id,
            at,
            e["actor"],
            e["action"],
            e["subject_type"],
            subject_id,
            text,
            classification.value,
            fallback,
        )
        digest = compute_hash(prev, body)
        rows.append(
            {
                "id": entry_id,
                "at": at,
                "actor": e["actor"],
                "action": e["action"],
                "subject_type": e["subject_type"],
                "subject_id": subject_id,
                "payload": text,
                "classification": classification,
                "calendar_fallback": fallback,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    session.execute(insert(TrailEntry.__table__), rows)
    session.execute(_HEAD_UPDATE, {"last_id": entry_id, "last_hash": prev})
    return [r["id"] for r in rows]


def enqueue_many(session: Session, requests: list[dict[str, Any]]) -> int:
    wanted: dict[str, dict[str, Any]] = {}
    for r in requests:
        audiences = r.get("audiences")
        targets = (
            list(audiences)
            if audiences is not None
            else audiences_for(r["event_kind"], r["routing"], r["context"])
        )
        for aud in targets:
            key = f"{r['key']}:{aud}"
            if key in wanted:
                continue
            wanted[key] = {
                "idempotency_key": key,
                "event_kind": r["event_kind"],
                "audience": aud,
                "subject_type": r["subject_type"],
                "subject_id": str(r["subject_id"]),
                "classification": r["classification"],
                "context": r["context"],
                "is_drill": r.get("is_drill", False),
                "priority": r.get("priority", 0),
                "status": DeliveryStatus.pending,
                "attempts": 0,
                "created_at": r["at"],
                "next_attempt_at": r["at"],
                "trail_entry_id": r.get("trail_entry_id"),
            }
    keys = list(wanted)
    existing = set(
        session.scalars(
            select(OutboxMessage.idempotency_key).where(OutboxMessage.idempotency_key.in_(keys))
        )
    )
    rows = [row for key, row in wanted.items() if key not in existing]
    if rows:
        session.execute(insert(OutboxMessage.__table__), rows)
    return len(rows)


def record_many(session: Session, policy, records: list[dict[str, Any]]) -> list[int]:
    keys = (
        "at",
        "actor",
        "action",
        "subject_type",
        "subject_id",
        "payload",
        "classification",
        "calendar_fallback",
    )
    ids = append_many(
        session,
        [{k: r[k] for k in keys if k in r} | {"payload": r.get("payload") or {}} for r in records],
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
    )
    return ids


def raise_warnings(session: Session, ctx: Context, requests: list[dict]) -> list[EarlyWarning]:
    keys = [r["dedup_key"] for r in requests]
    existing = set(
        session.scalars(select(EarlyWarning.dedup_key).where(EarlyWarning.dedup_key.in_(keys)))
    )
    now = ctx.now()
    wanted = []
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
    record_many(
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
                ctx.policy.timezone,
            )
            for w, r, rule in made
        ],
    )
    return [w for w, _, _ in made]


def _item_columns():
    return (
        TaskNode.id,
        TaskNode.issue_id,
        TaskNode.title,
        TaskNode.owner_unit_id,
        TaskNode.start_date,
        TaskNode.due_date,
        TaskNode.progress_percent.label("percent"),
        TaskNode.done,
        # Raw values, parsed below in one vectorised pass: SQLAlchemy's per-value datetime
        # processing was a third of reading 1,000,000 items.
        type_coerce(TaskNode.interview_requested_at, String).label("interview_requested_at"),
        type_coerce(TaskNode.escalated_at, String).label("escalated_at"),
        type_coerce(TaskNode.next_action_on, String).label("next_action_on"),
    )


def open_items(session: Session, due_by=None) -> pd.DataFrame:
    """Open action items of executing issues: all of them, or (`due_by` a day) only those
    whose red-item step falls due by that day (or is not dated). (Updated with the colours
    derived, migration 0008: the same read over the columns that remain.)"""
    base = (
        select(*_item_columns())
        .join(Issue, Issue.id == TaskNode.issue_id)
        .where(
            TaskNode.level == TaskLevel.action_item,
            TaskNode.done.is_(False),
            Issue.stage == Stage.executing,
        )
    )
    if due_by is None:
        queries = [base]
    else:
        queries = [
            base.where(TaskNode.next_action_on <= due_by),
            base.where(TaskNode.next_action_on.is_(None)),
        ]
    frames = [pd.read_sql(q, session.connection()) for q in queries]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    frame = frame.drop_duplicates("id", ignore_index=True)
    for col in ("interview_requested_at", "escalated_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601")
    frame["start_date"] = frame["start_date"].fillna(frame["due_date"])
    return frame


def write_items(session: Session, ctx: Context, items: pd.DataFrame, dirty: np.ndarray) -> None:
    """Write back every read item whose red-item steps or step day changed: one executemany
    through the driver, every column set on every row."""
    action = next_red_step_days(items, ctx.policy.progress)
    stored_action = _days(items["next_action_on"])
    moved = ~((action == stored_action) | (np.isnat(action) & np.isnat(stored_action)))
    dirty = dirty | moved
    if not dirty.any():
        return
    sqlite = session.get_bind().dialect.name == "sqlite"
    rows = items.loc[dirty]
    columns = [
        *(_driver_times(rows[c], sqlite) for c in _TIME_COLUMNS),
        _driver_days(action[dirty]),
        rows["id"].astype("int64").to_numpy(object),
    ]
    mark = "?" if sqlite else "%s"
    sql = (
        "UPDATE task_node SET "
        + "".join(f"{c} = {mark}, " for c in _TIME_COLUMNS)
        + f"next_action_on = {mark} WHERE id = {mark}"
    )
    session.connection().exec_driver_sql(sql, list(zip(*columns, strict=True)))
