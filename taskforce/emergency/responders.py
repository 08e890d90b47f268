"""Who may answer an emergency from a form: acknowledge it (which stops its escalation) or
resolve it.

The groups its pages go to: the escalation chain (config emergency.escalation_chain) from
its leading group's step upward, the working-group step being its own working group. A
level-III emergency of wg:data is answered by wg:data, the executive group or the
leadership group; a level-I emergency by the leadership group. And only by a member
cleared for its classification (config/org.yaml `clearance`): acknowledging a record one
may not read would stop the escalation of something one has not seen.

A monitoring system's acknowledge / resolve (the gateway's, authenticated per source) is
not a member's and is not checked here.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskforce.context import Context
from taskforce.emergency.models import Emergency
from taskforce.emergency.queries import chain, get_emergency, group_for_step
from taskforce.errors import DomainError
from taskforce.org.models import Group, Member
from taskforce.org.service import active_member, cleared_members, not_cleared


def responder_groups(ctx: Context, emergency: Emergency) -> list[str]:
    """The group codes whose members may answer `emergency`, lowest step first."""
    steps = chain(ctx)
    first = steps.index(emergency.leading_group) if emergency.leading_group in steps else 0
    groups = [group_for_step(emergency, step) for step in steps[first:]]
    return list(dict.fromkeys(g for g in groups if g))


def require_responder(session: Session, ctx: Context, public_id: str, actor: str) -> Member:
    """The active member `actor`, if they may answer the emergency; else a DomainError on
    `actor` naming who may."""
    return _require_member_of(
        session, ctx, public_id, actor, extra=(), verb="answer", groups_are="the groups it pages"
    )


def require_recorder(session: Session, ctx: Context, public_id: str, actor: str) -> Member:
    """The active member `actor`, if they may record one of its deadlines as met (which
    stops that deadline's escalation): a responder, or a member of the executive group, whose
    office records deadlines of every level. Cleared for the emergency either way (an
    expert or the evaluator recorded a level-II solution as met: an operator trial)."""
    return _require_member_of(
        session,
        ctx,
        public_id,
        actor,
        extra=("executive",),
        verb="record a deadline of",
        groups_are="the groups that record its deadlines",
    )


def _require_member_of(
    session: Session,
    ctx: Context,
    public_id: str,
    actor: str,
    *,
    extra: tuple[str, ...],
    verb: str,
    groups_are: str,
) -> Member:
    member = active_member(session, actor, field="actor")
    # Locked: the check and the answer see the same level and classification (a repeat
    # raising it meanwhile waits).
    emergency = get_emergency(session, public_id, lock=True)
    groups = list(dict.fromkeys([*responder_groups(ctx, emergency), *extra]))
    group = session.scalar(select(Group.code).where(Group.id == member.group_id))
    cleared = emergency.classification.readable_by(member.clearance)
    if group in groups and cleared:
        return member
    allowed = cleared_members(session, Group.code.in_(groups), emergency.classification)
    level = emergency.level.value
    why = (
        not_cleared(member, "emergency", emergency.classification)
        if group in groups
        else f"{actor} of {group} is not among {groups_are} (level {level}: {', '.join(groups)})"
    )
    raise DomainError(
        f"{actor} may not {verb} emergency {emergency.public_id}: {why}",
        field="actor",
        allowed=f"a member of {' or '.join(groups)} cleared for "
        f"{emergency.classification.value}: {allowed or 'none is recorded'}",
    )
