"""Emergencies (应急, SPEC §5): the service the gateway, the flows and the CLI call.

Plain Python over a session, no Prefect. Each public function is one state
change in the caller's transaction, with its trail entry and outbox rows.
This module holds intake, the answers (acknowledge, resolve), dispatch marks
and the close with its follow-up issue, and re-exports the rest of the
service from the modules of their concepts:

* queries.py — reading (by id, by open dedup key, state, who is on call)
* paging.py — pages and the escalation chain
* deadlines.py — the level deadlines (I 2 h / 24 h, II 48 h)
* reserve.py — draws on the emergency reserve
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.clock import local_minute
from taskforce.context import Context
from taskforce.emergency.deadlines import (
    escalate_missed_deadlines,
    mark_deadline_met,
    record_deadline_met,
)
from taskforce.emergency.forms import EmergencyIntake, OpenResult
from taskforce.emergency.intake_sql import IntakeWriter
from taskforce.emergency.models import (
    Emergency,
    EmergencyEvent,
    EmergencyStatus,
    Level,
)
from taskforce.emergency.paging import (
    Escalation,
    cleared_step,
    escalate_due,
    page,
    page_if_unpaged,
    page_with_entry,
)
from taskforce.emergency.queries import (
    OPEN_STATUSES,
    UNACKNOWLEDGED,
    EmergencyState,
    chain,
    find_open,
    get_emergency,
    minutes_between,
    on_call_members,
    pending_dispatch,
    state,
)
from taskforce.emergency.reserve import request_reserve_draw
from taskforce.errors import DomainError, IllegalTransition, NotFound
from taskforce.loop.forms import ReportIssueForm
from taskforce.loop.report import report_issue
from taskforce.org.models import Group
from taskforce.policy.schema import Classification
from taskforce.reports.i18n import translator
from taskforce.text import as_one_line, as_text

__all__ = [
    "OPEN_STATUSES",
    "UNACKNOWLEDGED",
    "EmergencyState",
    "Escalation",
    "IntakeRequest",
    "acknowledge",
    "act_on_dedup",
    "close_resolved",
    "close_with_follow_up",
    "escalate_due",
    "escalate_missed_deadlines",
    "find_open",
    "get_emergency",
    "mark_dispatched",
    "mark_dispatched_many",
    "on_call_members",
    "open_emergencies",
    "open_emergency",
    "page",
    "page_if_unpaged",
    "pending_dispatch",
    "record_deadline_met",
    "request_reserve_draw",
    "resolve",
    "state",
]

log = logging.getLogger(__name__)


_UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MILLISECOND = dt.timedelta(milliseconds=1)


def new_public_id(at: dt.datetime) -> str:
    """A UUID version 7 (RFC 9562) as text: the Unix time of `at` in milliseconds, then 74
    random bits.

    Why time first: the public id has a unique index, and random (version 4) ids put every
    new emergency on a random page of it, about half of the pages an intake batch wrote
    (benchmarks/RESULTS.md, session 6); ids of one instant are neighbours. They stay
    unguessable, and only reveal when the emergency was opened, which its pages say anyway.
    Built from bytes rather than through uuid.UUID, whose checks cost three times as much."""
    if at.tzinfo is None:
        raise ValueError("naive datetime given for a public id; use an aware (UTC) datetime")
    millis = (at - _UNIX_EPOCH) // _MILLISECOND  # exact, unlike floats
    if not 0 <= millis < 1 << 48:
        raise ValueError(f"a public id's time must lie between 1970 and 10889, not {at}")
    b = bytearray(millis.to_bytes(6, "big") + os.urandom(10))
    b[6] = (b[6] & 0x0F) | 0x70
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def validate_intake(session: Session, ctx: Context, intake: EmergencyIntake) -> None:
    """Refuse an intake the organisation cannot take (DomainError naming its field)."""
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
        return _attach_repeat(session, ctx, existing, intake, actor=actor, is_drill=is_drill)
    validate_intake(session, ctx, intake)

    now = ctx.now()
    rule = ctx.policy.emergency.levels[intake.level.value]
    deadlines = {
        name: (now + dt.timedelta(hours=hours)).isoformat()
        for name, hours in rule.deadlines_hours.items()
    }
    emergency = Emergency(
        public_id=new_public_id(now),
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
        escalation_step=chain(ctx).index(rule.leading_group),
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
        return _attach_repeat(session, ctx, existing, intake, actor=actor, is_drill=is_drill)

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
        **_tracking(ctx, emergency.level, emergency.title, emergency.working_group, now),
    )
    return _answer(emergency, created=True)


def _tracking(
    ctx: Context, level: Level, title: str, working_group: str | None, opened: dt.datetime
) -> dict[str, Any]:
    """The notice an emergency of a tracked level sends when it opens (config emergency.levels
    `tracked`; SPEC §5: level III is the working group's own, and the executive tracks it)."""
    rule = ctx.policy.emergency.levels[Level(level).value]
    if not rule.tracked:
        return {}
    return {
        "notify": "emergency_tracked",
        "context": {
            "title": title,
            "level": Level(level).value,
            "level_name": rule.name_zh,
            "working_group": working_group or rule.leading_group,
            "opened": local_minute(opened, ctx.policy.timezone),
        },
    }


@dataclass(frozen=True)
class IntakeRequest:
    """One delivery for `open_emergencies`: `open_emergency`'s arguments."""

    intake: EmergencyIntake
    source: str
    dedup_key: str
    actor: str
    is_drill: bool = False

    def open_alone(self, session: Session, ctx: Context) -> OpenResult:
        """`open_emergency` of this delivery alone (what `open_emergencies` must equal)."""
        return open_emergency(
            session,
            ctx,
            self.intake,
            source=self.source,
            dedup_key=self.dedup_key,
            actor=self.actor,
            is_drill=self.is_drill,
        )


def open_emergencies(
    session: Session, ctx: Context, requests: list[IntakeRequest]
) -> list[OpenResult | DomainError]:
    """`open_emergency` for many deliveries in one transaction, set-based (the gateway's
    group commit): one SELECT of the open emergencies of all their keys, one of their
    working groups, bulk INSERTs of the new emergencies, their repeat events and the trail
    entries. The result is what calling `open_emergency` for each request in list order
    would give (tests/emergency/test_open_many.py checks this): the first delivery of a new
    key opens it, later ones attach as repeats; a request that `open_emergency` would refuse
    gets its DomainError in its place and writes nothing.
    """
    results: list[OpenResult | DomainError | None] = [None] * len(requests)
    intakes: list[EmergencyIntake | None] = [None] * len(requests)
    for i, r in enumerate(requests):
        # As open_emergency does for subclasses (a NativeTrigger, a flow's form); an
        # EmergencyIntake is validated already (validation is idempotent on these models).
        intakes[i] = (
            r.intake
            if type(r.intake) is EmergencyIntake
            else EmergencyIntake.model_validate(r.intake.model_dump())
        )
        if not r.dedup_key or len(r.dedup_key) > 200:
            results[i] = DomainError("must be 1 to 200 characters", field="dedup_key")
    pending = [i for i, result in enumerate(results) if result is None]
    if not pending:
        return results  # type: ignore[return-value]
    writer = IntakeWriter(session)
    try:
        return _open_pending(session, ctx, requests, intakes, results, pending, writer)
    finally:
        writer.close()


def _open_pending(
    session: Session,
    ctx: Context,
    requests: list[IntakeRequest],
    intakes: list[EmergencyIntake | None],
    results: list[OpenResult | DomainError | None],
    pending: list[int],
    writer: IntakeWriter,
) -> list[OpenResult | DomainError]:
    keys = {(requests[i].source, requests[i].dedup_key) for i in pending}
    groups_named = {intakes[i].working_group for i in pending if intakes[i].working_group}
    # The open emergencies of all keys (plain rows: no ORM objects to build) and the working
    # groups that exist: on PostgreSQL one round trip, and the writes below two more.
    open_rows, known_groups = writer.look_up(keys, groups_named)
    if _raises_a_level(requests, intakes, pending, open_rows):
        # Rare: deliveries of one key report different levels, and a more severe one raises
        # the emergency. One by one, as open_emergency would, so each sees the one before.
        return _open_one_by_one(session, ctx, requests, intakes, results, pending)

    now = ctx.now()
    chain_steps = chain(ctx)
    deadlines_of: dict[Level, dict[str, str]] = {}
    new_rows: list[dict] = []
    opened: dict[tuple[str, str], dict] = {}  # key -> its new row, for repeats in this batch
    repeats: list[tuple[int, tuple[str, str]]] = []  # (request index, key) in order
    for i in pending:
        r, intake = requests[i], intakes[i]
        key = (r.source, r.dedup_key)
        if key in open_rows or key in opened:
            repeats.append((i, key))
            continue
        rule = ctx.policy.emergency.levels[intake.level.value]
        if (rule.leading_group == "working_group" and not intake.working_group) or (
            intake.working_group and intake.working_group not in known_groups
        ):
            try:  # the one-by-one check names the problem exactly as open_emergency does
                validate_intake(session, ctx, intake)
            except DomainError as exc:
                results[i] = exc
                continue
        if intake.level not in deadlines_of:  # the batch shares `now`: once per level
            deadlines_of[intake.level] = {
                name: (now + dt.timedelta(hours=hours)).isoformat()
                for name, hours in rule.deadlines_hours.items()
            }
        deadlines = dict(deadlines_of[intake.level])
        row = {
            "public_id": new_public_id(now),
            "source": r.source,
            "dedup_key": r.dedup_key,
            "level": intake.level,
            "title": intake.title,
            "description": intake.description,
            "classification": intake.classification,
            "status": EmergencyStatus.pending_dispatch,
            "is_drill": r.is_drill,
            "leading_group": rule.leading_group,
            "working_group": intake.working_group,
            "opened_at": now,
            "deadlines": deadlines,
            "escalation_step": chain_steps.index(rule.leading_group),
            "pages_at_step": 0,
            "payload": intake.details,
            "repeats": 0,
        }
        opened[key] = row
        new_rows.append(row)

    # The batch's writes: on PostgreSQL one pipeline, sent when the trail head is read and
    # at the end of the block (`IntakeWriter.writes`). Nothing else below reads the database.
    with writer.writes():
        if new_rows:
            ids = writer.insert_emergencies(new_rows)
            for row in new_rows:
                row["id"] = ids[row["public_id"]]

        # Repeats: their counts, events and answers (an existing row's status and level, or
        # the new row's when the key was opened earlier in this batch).
        added: dict[int, int] = {}
        events_rows = []
        for i, key in repeats:
            target = open_rows.get(key)
            emergency_id = target.id if target is not None else opened[key]["id"]
            added[emergency_id] = added.get(emergency_id, 0) + 1
            events_rows.append(
                {
                    "emergency_id": emergency_id,
                    "kind": "repeat",
                    "at": now,
                    "actor": requests[i].actor,
                    "detail": {},
                }
            )
        writer.add_repeats(added)  # repeats = repeats + n, in one statement per chunk
        writer.insert_events(events_rows)

        # The trail, in request order, as open_emergency / _attach_repeat write it.
        records = []
        repeat_of = dict(repeats)
        for i in pending:
            if isinstance(results[i], DomainError):
                continue
            r = requests[i]
            key = (r.source, r.dedup_key)
            if i in repeat_of:
                target = open_rows.get(key)
                if target is not None:
                    public_id, source, dedup_key = target.public_id, target.source, target.dedup_key
                    classification, is_drill = target.classification, target.is_drill
                    status, level = target.status.value, target.level
                else:
                    row = opened[key]
                    public_id, source, dedup_key = row["public_id"], row["source"], row["dedup_key"]
                    classification, is_drill = row["classification"], row["is_drill"]
                    status, level = row["status"].value, row["level"]
                records.append(
                    {
                        "at": now,
                        "actor": r.actor,
                        "action": "emergency.repeat",
                        "subject_type": "emergency",
                        "subject_id": public_id,
                        "classification": classification,
                        "is_drill": is_drill,
                        "payload": {"source": source, "dedup_key": dedup_key},
                    }
                )
                results[i] = OpenResult.model_construct(
                    emergency_id=public_id,
                    created=False,
                    status=status,
                    level=level,
                    is_drill=is_drill,
                )
                continue
            row = opened[key]
            records.append(
                {
                    "at": now,
                    "actor": r.actor,
                    "action": "emergency.opened",
                    "subject_type": "emergency",
                    "subject_id": row["public_id"],
                    "classification": row["classification"],
                    "is_drill": row["is_drill"],
                    "payload": {
                        "source": row["source"],
                        "dedup_key": row["dedup_key"],
                        "level": row["level"].value,
                        "title": row["title"],
                        "leading_group": row["leading_group"],
                        "working_group": row["working_group"],
                        "deadlines": row["deadlines"],
                        "is_drill": row["is_drill"],
                    },
                    **_tracking(ctx, row["level"], row["title"], row["working_group"], now),
                }
            )
            results[i] = OpenResult.model_construct(
                emergency_id=row["public_id"],
                created=True,
                status=row["status"].value,
                level=row["level"],
                is_drill=row["is_drill"],
            )
        events.record_many(session, ctx.policy, records)
    return results  # type: ignore[return-value]


def _raises_a_level(requests, intakes, pending, open_rows) -> bool:
    """Whether a delivery may raise its key's level: it is more severe than the key's open
    emergency or than an earlier delivery of the key in this batch (whichever of those
    opens a new key depends on validation, so any earlier one counts). Repeats at the same
    or a milder level stay set-based."""
    mildest: dict[tuple[str, str], int] = {}
    for i in pending:
        key = (requests[i].source, requests[i].dedup_key)
        severity = Level(intakes[i].level).severity
        if key not in mildest and key in open_rows:
            mildest[key] = Level(open_rows[key].level).severity
        if key in mildest and severity > mildest[key]:
            return True
        mildest[key] = min(mildest.get(key, severity), severity)
    return False


def _open_one_by_one(session, ctx, requests, intakes, results, pending):
    for i in pending:
        r = requests[i]
        try:
            with session.begin_nested():  # a refused delivery writes nothing
                results[i] = open_emergency(
                    session,
                    ctx,
                    intakes[i],
                    source=r.source,
                    dedup_key=r.dedup_key,
                    actor=r.actor,
                    is_drill=r.is_drill,
                )
        except DomainError as exc:
            results[i] = exc
    return results


# The set-based paths' statements, built once (building a statement costs more than
# running it on a small batch).
_E = Emergency.__table__


def raises_level(reported: Level, current: Level) -> bool:
    """Whether a delivery of `reported` on an open emergency of `current` is more severe."""
    return Level(reported).severity > Level(current).severity


def _attach_repeat(
    session: Session,
    ctx: Context,
    emergency: Emergency,
    intake: EmergencyIntake,
    *,
    actor: str,
    is_drill: bool = False,
) -> OpenResult:
    """Count a repeat delivery on the open emergency; one reporting a more severe level
    raises the emergency to it (`_raise_level`) rather than being dropped as a repeat."""
    if raises_level(intake.level, emergency.level):
        return _raise_level(session, ctx, emergency, intake, actor=actor, is_drill=is_drill)
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
    return _answer(emergency, created=False)


def _answer(emergency: Emergency, *, created: bool) -> OpenResult:
    """What a delivery is answered: the emergency it opened or attached to, as it is now."""
    return OpenResult(
        emergency_id=emergency.public_id,
        created=created,
        status=emergency.status.value,
        level=emergency.level,
        is_drill=emergency.is_drill,
    )


def _raise_level(
    session: Session,
    ctx: Context,
    emergency: Emergency,
    intake: EmergencyIntake,
    *,
    actor: str,
    is_drill: bool,
) -> OpenResult:
    """A delivery reports a more severe level for an open emergency (a disk alert that is now
    a data-centre outage): the emergency takes that level, its leading group, the stricter
    of each deadline and of the two classifications, and the new leading group is paged in
    this transaction. On the trail and announced as an escalation (emergency_escalated, to
    the leadership group and the director). An acknowledged emergency stays acknowledged:
    its first response is what the KPIs measure, so the new group's page is not repeated
    by the acknowledgement timer (the escalation notice is its second channel)."""
    # Locked and read again: another delivery (another gateway process on PostgreSQL) may
    # have raised, resolved or counted it since `find_open` read it.
    emergency = session.scalars(
        select(Emergency)
        .where(Emergency.id == emergency.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if emergency.status not in OPEN_STATUSES:  # resolved meanwhile: the key is free again
        return open_emergency(
            session,
            ctx,
            intake,
            source=emergency.source,
            dedup_key=emergency.dedup_key,
            actor=actor,
            is_drill=is_drill,
        )
    if not raises_level(intake.level, emergency.level):  # raised as far meanwhile
        return _attach_repeat(session, ctx, emergency, intake, actor=actor, is_drill=is_drill)
    now = ctx.now()
    rule = ctx.policy.emergency.levels[intake.level.value]
    before = {"level": emergency.level.value, "leading_group": emergency.leading_group}
    # The delivery's text goes on the trail and in the notice: at the stricter of the two
    # classifications, so a secret report never reaches a channel cleared for public.
    emergency.classification = Classification.highest(
        emergency.classification, intake.classification
    )
    deadlines = dict(emergency.deadlines or {})
    for name, hours in rule.deadlines_hours.items():
        due = (now + dt.timedelta(hours=hours)).isoformat()
        deadlines[name] = min(deadlines.get(name, due), due, key=dt.datetime.fromisoformat)
    emergency.level = intake.level
    emergency.leading_group = rule.leading_group
    emergency.deadlines = deadlines
    # The chain only climbs: an emergency escalated past the new leading group already
    # stays where it is (and is paged again there, with the next page number).
    step = max(emergency.escalation_step, chain(ctx).index(rule.leading_group))
    if step != emergency.escalation_step:
        emergency.escalation_step, emergency.pages_at_step = step, 0
    if emergency.pages_at_step == 0:  # as the page below will: where someone may answer
        emergency.escalation_step = cleared_step(
            session, ctx, emergency, emergency.escalation_step, {}
        )
    session.flush()
    session.execute(  # as _attach_repeat counts: concurrent repeats never lose a count
        update(Emergency)
        .where(Emergency.id == emergency.id)
        .values(repeats=Emergency.repeats + 1)
        .execution_options(synchronize_session=False)
    )
    detail = {
        "from": before["level"],
        "to": intake.level.value,
        "leading_group": rule.leading_group,
        "title": intake.title,
        "deadlines": deadlines,
    }
    session.add(
        EmergencyEvent(
            emergency_id=emergency.id, kind="level_raised", at=now, actor=actor, detail=detail
        )
    )
    raised = events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="emergency.level_raised",
        subject_type="emergency",
        subject_id=emergency.public_id,
        classification=emergency.classification,
        is_drill=emergency.is_drill,
        notify="emergency_escalated",
        priority=ctx.policy.emergency.page_priority,
        payload={**detail, "source": emergency.source, "dedup_key": emergency.dedup_key},
        # Keys of taskforce/notify/templates/<locale>/emergency_escalated.j2 (its raised branch).
        context={
            "emergency": emergency.public_id,
            "level": intake.level.value,
            "title": emergency.title,
            "raised_from": before["level"],
            "to": chain(ctx)[emergency.escalation_step],  # whom the page goes to
            "reason": intake.title,
            "is_drill": emergency.is_drill,
        },
    )
    session.flush()
    _members, paged = page_with_entry(
        session, ctx, emergency, actor=actor, reason=f"level raised to {intake.level.value}"
    )
    return _answer(emergency, created=False).model_copy(
        update={"raised_from": Level(before["level"]), "send_now": (paged, raised.id)}
    )


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
        payload={"note": note, "minutes_to_ack": minutes_between(emergency.opened_at, now)},
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
        payload={"note": note, "minutes_to_resolve": minutes_between(emergency.opened_at, now)},
    )
    for name in emergency.deadlines:
        mark_deadline_met(session, ctx, emergency, name, actor=actor, how="resolved")
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


def mark_dispatched_many(
    session: Session, ctx: Context, runs: list[tuple[str, str]], *, actor: str
) -> list[bool]:
    """`mark_dispatched` for many (public id, flow run id) pairs, set-based: one locking
    SELECT, one executemany UPDATE (plain DBAPI, see intake_sql.py), one bulk trail append.
    Gives what calling `mark_dispatched` for each pair in order would
    (tests/emergency/test_open_many.py, test_intake_rows.py)."""
    if not runs:
        return []
    writer = IntakeWriter(session)
    try:
        found = writer.dispatch_state(sorted({str(public_id) for public_id, _ in runs}))
        marked: list[bool] = []
        updates, records, done = [], [], set()
        now = ctx.now()
        for public_id, flow_run_id in runs:
            e = found.get(str(public_id))
            if e is None:
                raise NotFound(f"no emergency {public_id!r}", field="emergency_id")
            if e.flow_run_id is not None or e.public_id in done:
                marked.append(False)
                continue
            done.add(e.public_id)
            status = (
                EmergencyStatus.dispatched
                if e.status == EmergencyStatus.pending_dispatch
                else e.status
            )
            updates.append((e.id, str(flow_run_id), status))
            records.append(
                {
                    "at": now,
                    "actor": actor,
                    "action": "emergency.dispatched",
                    "subject_type": "emergency",
                    "subject_id": e.public_id,
                    "classification": e.classification,
                    "is_drill": e.is_drill,
                    "payload": {"flow_run_id": str(flow_run_id)},
                }
            )
            marked.append(True)
        if updates:
            writer.mark_dispatched(updates)
    finally:
        writer.close()
    if updates:
        events.record_many(session, ctx.policy, records)
    return marked


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
        # In the office's language and local time (policy.locale, policy.timezone), as the
        # issue lists and reviews show it.
        t = translator(ctx.policy.locale)
        tz = ctx.policy.timezone
        facts = {
            "id": emergency.public_id,
            "level": emergency.level.value,
            # An operator's form in words; a monitoring system by its configured name.
            "source": t(f"emergency_source.{emergency.source}")
            if emergency.source == "operator"
            else emergency.source,
            "title": emergency.title,
            "opened": local_minute(emergency.opened_at, tz),
            "resolved": local_minute(emergency.resolved_at, tz)
            if emergency.resolved_at
            else t("follow_up.unresolved"),
        }
        result = report_issue(
            session,
            ctx,
            # A monitoring system's title may hold line breaks or control characters, which
            # a typed form refuses (taskforce/text.py): copied, they are dropped.
            ReportIssueForm(
                title=as_one_line(t("follow_up.title", **facts))[:300],
                description=as_text(
                    t("follow_up.description", **facts) + f"\n\n{emergency.description}"
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


def close_resolved(session: Session, ctx: Context, *, actor: str = "sweep") -> list[str]:
    """Close every resolved emergency with its follow-up issue: the sweep's step, since a
    response run does not wait for the resolution (flows/emergency.py)."""
    resolved = list(
        session.scalars(
            select(Emergency.public_id)
            .where(Emergency.status == EmergencyStatus.resolved)
            .order_by(Emergency.resolved_at, Emergency.id)
        )
    )
    closed = []
    for public_id in resolved:
        try:
            with session.begin_nested():  # one that cannot be closed keeps the rest moving
                close_with_follow_up(session, ctx, public_id, actor=actor)
        except Exception:
            log.exception("closing emergency %s with its follow-up failed", public_id)
            continue
        closed.append(public_id)
    return closed
