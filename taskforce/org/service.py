"""Load config/org.yaml into the database and answer questions about the organisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Integer, func, select
from sqlalchemy.orm import Session

from taskforce.db import get_engine
from taskforce.errors import NotFound
from taskforce.org.models import Group, Member, Unit
from taskforce.policy.schema import Classification, GroupKind, Organisation


def sync_organisation(session: Session, org: Organisation) -> dict[str, int]:
    """Upsert units, groups and members by code; members no longer listed become inactive."""
    units = {u.code: u for u in session.scalars(select(Unit))}
    for spec in org.units:
        unit = units.get(spec.code) or Unit(code=spec.code)
        unit.name, unit.name_en, unit.region = spec.name, spec.name_en, spec.region
        session.add(unit)
        units[spec.code] = unit
    groups = {g.code: g for g in session.scalars(select(Group))}
    for spec in org.groups:
        group = groups.get(spec.code) or Group(code=spec.code)
        group.kind, group.name, group.name_en, group.domain = (
            spec.kind,
            spec.name,
            spec.name_en,
            spec.domain,
        )
        session.add(group)
        groups[spec.code] = group
    session.flush()
    members = {m.code: m for m in session.scalars(select(Member))}
    listed = set()
    for spec in org.members:
        member = members.get(spec.code) or Member(code=spec.code)
        member.name, member.role = spec.name, spec.role
        member.group_id, member.unit_id = groups[spec.group].id, units[spec.unit].id
        member.full_time, member.on_call, member.director = (
            spec.full_time,
            spec.on_call,
            spec.director,
        )
        member.training_hours, member.clearance = spec.training_hours, spec.clearance
        member.contacts, member.active = list(spec.contacts), True
        session.add(member)
        members[spec.code] = member
        listed.add(spec.code)
    session.flush()
    for spec in org.members:
        members[spec.code].backup_id = members[spec.backup].id if spec.backup else None
    for code, member in members.items():
        if code not in listed:
            member.active = False
    session.flush()
    return {"units": len(org.units), "groups": len(org.groups), "members": len(listed)}


def leadership_size(session: Session) -> int:
    """All active leadership members: the denominator of every vote (SPEC §2.2)."""
    return (
        session.scalar(
            select(func.count(Member.id))
            .join(Group, Member.group_id == Group.id)
            .where(Group.kind == GroupKind.leadership, Member.active.is_(True))
        )
        or 0
    )


def director(session: Session) -> Member:
    return session.scalars(
        select(Member).where(Member.director.is_(True), Member.active.is_(True))
    ).one()


def unit_by_code(session: Session, code: str) -> Unit | None:
    return session.scalars(select(Unit).where(Unit.code == code)).one_or_none()


def active_member(session: Session, code: str, *, field: str) -> Member:
    """The active member of this code, or an error listing the codes there are: an operator's
    acknowledgement stops an escalation, so it must name a person the office knows."""
    member = session.scalars(select(Member).where(Member.code == code)).one_or_none()
    if member is not None and member.active:
        return member
    # Each code with its name: an operator who knows the person, not the code, finds it here.
    members = session.execute(
        select(Member.code, Member.name)
        .where(Member.active.is_(True))
        .order_by(Member.code)
        .limit(LISTED_UNITS_MAX + 1)
    ).all()
    shown = listing(f"{member_code} {name}" for member_code, name in members)
    raise NotFound(
        f"no active member {code!r}",
        field=field,
        allowed=f"a member code of config/org.yaml: {shown}",
    )


def cleared_member_names(
    session: Session, where: Any, classification: Classification
) -> list[tuple[str, str]]:
    """(code, name) of the active members of the groups `where` selects (a condition on
    Group) who are cleared for `classification`, in code order."""
    rows = session.execute(
        select(Member.code, Member.name, Member.clearance)
        .join(Group, Group.id == Member.group_id)
        .where(where, Member.active.is_(True))
        .order_by(Member.code)
    ).all()
    return [
        (code, name)
        for code, name, clearance in rows
        if classification.readable_by(Classification(clearance))
    ]


def cleared_members(session: Session, where: Any, classification: Classification) -> str:
    """Those of `cleared_member_names` as a refusal lists who may: "E1 周晓东, E2 吴静"."""
    return listing(
        f"{code} {name}" for code, name in cleared_member_names(session, where, classification)
    )


def not_cleared(member: Member, subject: str, classification: Classification) -> str:
    """Why `member` may not act on a record above their clearance (config/org.yaml), in the
    words every such refusal uses: emergencies, their deadlines, warnings."""
    return (
        f"{member.code} is cleared for {member.clearance.value} material and the {subject} "
        f"is {classification.value}"
    )


@dataclass(frozen=True)
class GroupSummary:
    code: str
    name: str
    kind: str
    members: int
    full_time: int
    on_call: int


# Codes an "unknown unit" error lists (a sample organisation has a dozen units).
LISTED_UNITS_MAX = 40


def listed_codes(session: Session, codes_query) -> str:
    """The codes of a query as an error lists them (see `listing`)."""
    return listing(session.scalars(codes_query.limit(LISTED_UNITS_MAX + 1)))


def listing(codes) -> str:
    """Codes as an error lists them: comma-separated, at most LISTED_UNITS_MAX of them."""
    codes = list(codes)
    return ", ".join(codes[:LISTED_UNITS_MAX]) + (", …" if len(codes) > LISTED_UNITS_MAX else "")


def unknown_unit(session: Session, code: str, field: str) -> NotFound:
    """The error for a unit code the organisation lacks, listing the codes it has."""
    shown = listed_codes(session, select(Unit.code).order_by(Unit.code))
    return NotFound(
        f"unknown unit {code!r}",
        field=field,
        allowed=f"a unit code of config/org.yaml: {shown}"
        if shown
        else "a unit code of config/org.yaml",
    )


def group_summaries(session: Session) -> list[GroupSummary]:
    rows = session.execute(
        select(
            Group.code,
            Group.name,
            Group.kind,
            func.count(Member.id),
            func.coalesce(func.sum(Member.full_time.cast(Integer)), 0),
            func.coalesce(func.sum(Member.on_call.cast(Integer)), 0),
        )
        .outerjoin(Member, (Member.group_id == Group.id) & Member.active.is_(True))
        .group_by(Group.id)
        .order_by(Group.id)
    ).all()
    return [
        GroupSummary(c, n, GroupKind(k).value, int(m), int(f), int(o)) for c, n, k, m, f, o in rows
    ]


def missing_organisation_hint(engine: Engine | None = None) -> str | None:
    """What to run when the schema exists but the organisation was never loaded (a fresh
    `taskforce migrate` without `taskforce init`): every lookup of a unit or member fails
    then, with messages that name the lookup, not the cause. For the command line."""
    try:
        with (engine or get_engine()).connect() as connection:
            if connection.scalar(select(func.count()).select_from(Unit)):
                return None
    except Exception:  # no schema, no database: other messages say so
        return None
    return "the database has no organisation yet: run `taskforce init` (it loads config/org.yaml)"
