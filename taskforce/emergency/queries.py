"""Reading emergencies: by id, by open dedup key, the state a flow acts on, who is on call."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from taskforce.context import Context
from taskforce.emergency.models import OPEN_DEDUP_WHERE, Emergency, EmergencyStatus, Level
from taskforce.errors import DomainError, NotFound
from taskforce.org.models import Group, Member
from taskforce.policy.schema import Classification

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


# Characters of an id an operator may type instead of all 36: a UUID version 7 begins with
# the time it was made, so 8 characters name the emergencies of about one minute.
SHORT_ID_MIN = 8
UUID_LENGTH = 36
_CANDIDATES_SHOWN = 5
# What an emergency id looks like, in words: a refusal names it so (a pattern in a refusal
# told an operator nothing). The example has the shape new_public_id makes (a UUID v7).
ID_IN_WORDS = (
    "an emergency's id as its pages, the gateway's answer and `taskforce emergency list` "
    "show it: 36 characters, 32 hexadecimal digits (0-9 and a-f) in groups of 8, 4, 4, 4 and "
    "12 joined by dashes, e.g. 019ac3f2-5b1e-7c40-9a8d-2f6e1b7c9d03; or its first "
    f"{SHORT_ID_MIN} characters or more (e.g. 019ac3f2) when no other emergency's id begins "
    "with them"
)


def get_emergency(
    session: Session, public_id: str, *, lock: bool = False, timezone: str | None = None
) -> Emergency:
    """The emergency of an id, or of the first characters of one (at least SHORT_ID_MIN)
    when no other emergency's id begins with them. `timezone`: the office's, for the opening
    times a refusal lists (UTC without it)."""
    public_id = str(public_id).lower()  # ids are stored in lower case
    if len(public_id) < UUID_LENGTH:
        public_id = _whole_id(session, public_id, timezone)
    query = select(Emergency).where(Emergency.public_id == public_id)
    if lock:
        query = query.with_for_update()
    emergency = session.scalars(query).one_or_none()
    if emergency is None:
        raise NotFound(f"no emergency {public_id!r}", field="emergency_id")
    return emergency


def _whole_id(session: Session, typed: str, timezone: str | None) -> str:
    """The one id that begins with `typed` (an operator trial: people type the first eight
    characters of an id they read in a page, as they would a commit's)."""
    if len(typed) < SHORT_ID_MIN or typed.strip("0123456789abcdef-"):
        raise NotFound(
            f"no emergency {typed!r}",
            field="emergency_id",
            allowed=ID_IN_WORDS,
        )
    # `typed` holds no LIKE wildcard (checked above). Neither database's index serves this
    # LIKE (SQLite's is case-insensitive; PostgreSQL's index has a collation): a scan of the
    # id index, milliseconds for tens of thousands of emergencies, on an operator's form.
    found = session.execute(
        select(Emergency.public_id, Emergency.level, Emergency.opened_at, Emergency.is_drill)
        .where(Emergency.public_id.like(f"{typed}%"))
        .order_by(Emergency.public_id)
        .limit(_CANDIDATES_SHOWN + 1)
    ).all()
    if not found:
        raise NotFound(f"no emergency's id begins with {typed!r}", field="emergency_id")
    if len(found) > 1:
        count = len(found) if len(found) <= _CANDIDATES_SHOWN else f"more than {_CANDIDATES_SHOWN}"
        shown = "; ".join(
            f"{row.public_id} (level {row.level.value}{', drill' if row.is_drill else ''}, "
            f"opened {_opened(row.opened_at, timezone)})"
            for row in found[:_CANDIDATES_SHOWN]
        )
        raise DomainError(
            f"{typed!r} begins the ids of {count} emergencies (ids made in the same minute "
            "share their first characters)",
            field="emergency_id",
            allowed=f"more of the id, or the whole of one of: {shown}",
        )
    return found[0].public_id


def _opened(instant: dt.datetime, timezone: str | None) -> str:
    """The office's local time, its zone named; to the second, since the ids listed were
    made in the same minute (a re-trial: two lines told apart by their ids alone)."""
    if timezone is None:
        return f"{instant:%Y-%m-%d %H:%M:%S} UTC"
    return f"{instant.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M:%S} {timezone}"


def find_open(session: Session, source: str, dedup_key: str) -> Emergency | None:
    # The dedup index's own condition (equal to `status IN OPEN_STATUSES` over the five
    # statuses): with `IN` SQLite chose the status index and scanned every open emergency,
    # milliseconds per webhook once thousands were open.
    return session.scalars(
        select(Emergency).where(
            Emergency.source == source,
            Emergency.dedup_key == dedup_key,
            text(OPEN_DEDUP_WHERE),
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


def listed(
    session: Session, statuses: tuple[EmergencyStatus, ...] | None, limit: int
) -> list[Emergency]:
    """Emergencies in these statuses (None: any), newest first."""
    query = select(Emergency).order_by(Emergency.opened_at.desc(), Emergency.id.desc())
    if statuses is not None:
        query = query.where(Emergency.status.in_(statuses))
    return list(session.scalars(query.limit(limit)))


def pending_dispatch(session: Session) -> list[str]:
    """Public ids of emergencies no flow run was created for yet, oldest first. Not a resolved
    one: there is nothing left for a run to wait for, and the sweep closes it with its
    follow-up issue (service.close_resolved); a burst resolved before Prefect came back would
    otherwise start a flow-run process each."""
    return list(
        session.scalars(
            select(Emergency.public_id)
            .where(
                Emergency.flow_run_id.is_(None),
                Emergency.status.notin_([EmergencyStatus.resolved, EmergencyStatus.closed]),
            )
            .order_by(Emergency.opened_at, Emergency.id)
        )
    )


def on_call_members(
    session: Session, group_code: str, classification: Classification | None = None
) -> list[str]:
    """Member codes to page for a group: its on-call members (§2.4 24-hour contacts).

    A group without an on-call member is paged whole, so no step of the chain is silent.
    With a classification, those cleared for it come first (only they may acknowledge,
    emergency/responders.py): the group's cleared on-call members, else its cleared
    members. A group with nobody cleared is not where paging starts (paging.cleared_step
    moves to the next step that has someone cleared); when no step has anyone cleared, the
    step it would have started at is paged, with a reference only.
    """
    rows = session.execute(
        select(Member.code, Member.on_call, Member.clearance)
        .join(Group, Member.group_id == Group.id)
        .where(Group.code == group_code, Member.active.is_(True))
        .order_by(Member.code)
    ).all()
    if classification is not None:
        cleared = [r for r in rows if classification.readable_by(Classification(r.clearance))]
        rows = cleared or rows
    on_call = [code for code, flag, _clearance in rows if flag]
    return on_call or [code for code, _flag, _clearance in rows]


def chain(ctx: Context) -> list[str]:
    return list(ctx.policy.emergency.escalation_chain)


def group_for_step(emergency: Emergency, step_name: str) -> str | None:
    if step_name == "working_group":
        return emergency.working_group
    return step_name


def minutes_between(start: dt.datetime, end: dt.datetime) -> float:
    return round((end - start).total_seconds() / 60, 2)
