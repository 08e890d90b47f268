"""The emergency reserve (应急预留, SPEC §4): one way to draw on it.

Only an open, real (not drill) emergency may draw; the approving group must
hold the authority for the amount (SPEC §1), and the approver the form names must be an
active member of that group cleared for the emergency (a group named on a form approves
nothing by itself: anyone could have typed "leadership"); the year's reserve may not be
overdrawn; every draw is a ledger entry of kind `reserve_draw` linked to its
emergency, an emergency event, a decision-trail entry and a notification.
Both the budget's reserve-draw form and the emergency-response flow come here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.authority import may_approve
from taskforce.budget.models import BudgetLine, FiscalYear, LedgerEntry, LedgerKind
from taskforce.clock import local_date
from taskforce.context import Context
from taskforce.emergency.models import Emergency, EmergencyEvent, EmergencyStatus
from taskforce.errors import DomainError, IllegalTransition, NotFound
from taskforce.money import format_yuan
from taskforce.org.models import Group, Member
from taskforce.org.service import active_member, cleared_members, not_cleared
from taskforce.policy.schema import Classification, GroupKind

OPEN_EMERGENCY = (
    EmergencyStatus.pending_dispatch,
    EmergencyStatus.dispatched,
    EmergencyStatus.acknowledged,
)


@dataclass(frozen=True)
class ReserveDraw:
    ledger_entry_id: int
    amount_fen: int
    approved_by: str
    approver: str
    rule: str
    remaining_fen: int


def reserve_drawn(session: Session, year: int) -> int:
    """What has been paid out of the year's reserve so far (0 when the year has no budget):
    the entries on its reserve line, or without one the year's reserve draws."""
    line_id = session.scalar(
        select(BudgetLine.id).where(BudgetLine.fiscal_year == year, BudgetLine.is_reserve.is_(True))
    )
    return _drawn(session, year, line_id)


def _drawn(session: Session, year: int, line_id: int | None) -> int:
    drawn = select(func.coalesce(func.sum(LedgerEntry.amount_fen), 0))
    if line_id is not None:
        drawn = drawn.where(LedgerEntry.line_id == line_id)
    else:
        drawn = drawn.where(
            LedgerEntry.fiscal_year == year, LedgerEntry.kind == LedgerKind.reserve_draw
        )
    return int(session.scalar(drawn) or 0)


def reserve_left(session: Session, year: int) -> tuple[int | None, int]:
    """The year's reserve line (if the budget made one) and what is left of the reserve.

    With a reserve budget line, draws are counted on it; without one, on the
    year's reserve as set on the fiscal year.
    """
    line = session.execute(
        select(BudgetLine.id, BudgetLine.amount_fen).where(
            BudgetLine.fiscal_year == year, BudgetLine.is_reserve.is_(True)
        )
    ).first()
    if line is not None:
        return line.id, line.amount_fen - _drawn(session, year, line.id)
    reserve_fen = session.scalar(select(FiscalYear.reserve_fen).where(FiscalYear.year == year))
    if reserve_fen is None:
        raise NotFound(
            f"no fiscal year {year} with an emergency reserve",
            field="fiscal_year",
            allowed="a year whose budget has been set",
        )
    return None, reserve_fen - _drawn(session, year, None)


def draw_on_reserve(
    session: Session,
    ctx: Context,
    emergency: Emergency,
    *,
    amount_fen: int,
    approved_by: GroupKind,
    approver: str,
    cross_department: bool,
    fiscal_year: int,
    entry_date: dt.date,
    payee: str,
    description: str,
    external_ref: str,
    actor: str,
    action: str,
    emergency_field: str = "emergency",
) -> ReserveDraw:
    """Check every rule, then write the draw; a refused draw writes nothing."""
    if emergency.status not in OPEN_EMERGENCY:
        raise IllegalTransition(
            f"the emergency is {emergency.status.value}",
            field=emergency_field,
            allowed="an open emergency (pending, dispatched or acknowledged)",
        )
    if emergency.is_drill:
        raise DomainError(
            "the emergency is a drill",
            field=emergency_field,
            allowed="a real emergency; drills draw nothing",
        )
    opened_on = local_date(emergency.opened_at, ctx.policy.timezone)
    if entry_date < opened_on:
        # The weekly audit reports such a draw as critical (reserve_without_emergency).
        raise DomainError(
            f"dated {entry_date.isoformat()}, before the emergency opened on "
            f"{opened_on.isoformat()}",
            field="entry_date",
            allowed=f"on or after {opened_on.isoformat()}",
        )
    check = may_approve(
        approved_by, amount_fen, ctx.policy.authority, cross_department=cross_department
    )
    if not check.allowed:
        raise DomainError(
            f"{GroupKind(approved_by).value} may not approve {format_yuan(amount_fen, 'en')}: {check.rule}",
            field="approved_by",
            allowed=check.required.value,
        )
    approving = approving_member(session, approver, GroupKind(approved_by), emergency)
    line_id, remaining = reserve_left(session, fiscal_year)
    if amount_fen > remaining:
        raise DomainError(
            f"{format_yuan(amount_fen, 'en')} exceeds the reserve left for {fiscal_year} ({format_yuan(remaining, 'en')})",
            field="amount",
            allowed=f"at most {format_yuan(remaining, 'en')}",
        )
    now = ctx.now()
    entry = LedgerEntry(
        fiscal_year=fiscal_year,
        line_id=line_id,
        kind=LedgerKind.reserve_draw,
        emergency_id=emergency.id,
        entry_date=entry_date,
        amount_fen=amount_fen,
        payee=payee,
        description=description or f"emergency {emergency.public_id}: {emergency.title}",
        external_ref=external_ref,
        created_at=now,
    )
    session.add(entry)
    session.flush()
    draw = ReserveDraw(
        entry.id,
        amount_fen,
        GroupKind(approved_by).value,
        approving.code,
        check.rule,
        remaining - amount_fen,
    )
    detail = {**draw.__dict__, "fiscal_year": fiscal_year, "external_ref": external_ref}
    session.add(
        EmergencyEvent(
            emergency_id=emergency.id, kind="reserve_draw", at=now, actor=actor, detail=detail
        )
    )
    line_class = (
        session.scalar(select(BudgetLine.classification).where(BudgetLine.id == line_id))
        if line_id
        else None
    )
    classification = Classification.highest(
        emergency.classification, line_class or Classification.public
    )
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action=action,
        subject_type="emergency",
        subject_id=emergency.public_id,
        classification=classification,
        payload=detail,
        notify="reserve_drawn",
        context={
            "emergency": emergency.title,
            "amount": format_yuan(amount_fen, ctx.policy.locale),
            "left": format_yuan(remaining - amount_fen, ctx.policy.locale),
        },
    )
    return draw


def approving_member(session: Session, code: str, group: GroupKind, emergency: Emergency) -> Member:
    """The active member `code` of the approving group, cleared for the emergency; else a
    DomainError on `approver` naming who may approve."""
    member = active_member(session, code, field="approver")
    kind = session.scalar(select(Group.kind).where(Group.id == member.group_id))
    cleared = emergency.classification.readable_by(member.clearance)
    if kind == group and cleared:
        return member
    allowed = cleared_members(session, Group.kind == group, emergency.classification)
    why = (
        not_cleared(member, "emergency", emergency.classification)
        if kind == group
        else f"{code} is not a member of the {group.value} group"
    )
    raise DomainError(
        f"{code} may not approve a draw for emergency {emergency.public_id} on behalf of "
        f"{group.value}: {why}",
        field="approver",
        allowed=f"a member of {group.value} cleared for {emergency.classification.value}: "
        f"{allowed or 'none is recorded'}",
    )
