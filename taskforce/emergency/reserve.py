"""Draws on the emergency reserve (SPEC §4: 10 % of the year's budget; only an emergency
may draw, within the authority rules, every draw on the decision trail)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.authority import may_approve
from taskforce.budget.models import BudgetLine, FiscalYear, LedgerEntry, LedgerKind
from taskforce.context import Context
from taskforce.emergency.forms import ReserveDrawForm
from taskforce.emergency.models import EmergencyEvent
from taskforce.emergency.queries import OPEN_STATUSES, get_emergency
from taskforce.errors import DomainError, IllegalTransition, NotFound
from taskforce.idempotency import previous_result, remember
from taskforce.money import format_yuan, to_fen


def request_reserve_draw(
    session: Session,
    ctx: Context,
    public_id: str,
    form: ReserveDrawForm,
    *,
    actor: str,
    key: str,
) -> dict:
    """Draw on the emergency reserve (SPEC §4) for this emergency, within the authority rules.

    The draw is refused, writing nothing, when the emergency is no longer open
    or is a drill, when the approving group lacks the authority for the amount,
    or when the year's reserve would be overdrawn.
    """
    form = ReserveDrawForm.model_validate(form.model_dump())
    if (done := previous_result(session, key)) is not None:
        return done
    emergency = get_emergency(session, public_id, lock=True)
    if emergency.status not in OPEN_STATUSES:
        raise IllegalTransition(
            f"the emergency is {emergency.status.value}",
            field="emergency_id",
            allowed="an open emergency (pending, dispatched or acknowledged)",
        )
    if emergency.is_drill:
        raise DomainError(
            "the emergency is a drill", field="emergency_id", allowed="a real emergency"
        )
    amount_fen = to_fen(form.amount)
    check = may_approve(
        form.approved_by, amount_fen, ctx.policy.authority, cross_department=form.cross_department
    )
    if not check.allowed:
        raise DomainError(
            f"{form.approved_by.value} may not approve {format_yuan(amount_fen)}: {check.rule}",
            field="approved_by",
            allowed=check.required.value,
        )
    year = ctx.today().year
    line_id, remaining = _reserve_left(session, year)
    if amount_fen > remaining:
        raise DomainError(
            f"{format_yuan(amount_fen)} exceeds the reserve left for {year} ({format_yuan(remaining)})",
            field="amount",
            allowed=f"at most {format_yuan(remaining)}",
        )
    now = ctx.now()
    entry = LedgerEntry(
        fiscal_year=year,
        line_id=line_id,
        kind=LedgerKind.reserve_draw,
        emergency_id=emergency.id,
        entry_date=ctx.today(),
        amount_fen=amount_fen,
        payee=form.payee,
        description=form.description or f"emergency {emergency.public_id}: {emergency.title}",
        external_ref=key,
        created_at=now,
    )
    session.add(entry)
    session.flush()
    detail = {
        "ledger_entry_id": entry.id,
        "amount_fen": amount_fen,
        "approved_by": form.approved_by.value,
        "rule": check.rule,
        "remaining_fen": remaining - amount_fen,
    }
    session.add(
        EmergencyEvent(
            emergency_id=emergency.id, kind="reserve_draw", at=now, actor=actor, detail=detail
        )
    )
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="emergency.reserve_drawn",
        subject_type="emergency",
        subject_id=emergency.public_id,
        classification=emergency.classification,
        is_drill=emergency.is_drill,
        payload=detail,
    )
    remember(session, key, "reserve_draw", detail, now)
    return detail


def _reserve_left(session: Session, year: int) -> tuple[int | None, int]:
    """The year's reserve line (if the budget made one) and what is left of the reserve.

    With a reserve budget line, draws are counted on it; without one, the
    year's reserve as set on the fiscal year, less its reserve draws.
    """
    line = session.execute(
        select(BudgetLine.id, BudgetLine.amount_fen).where(
            BudgetLine.fiscal_year == year, BudgetLine.is_reserve.is_(True)
        )
    ).first()
    drawn = select(func.coalesce(func.sum(LedgerEntry.amount_fen), 0))
    if line is not None:
        used = session.scalar(drawn.where(LedgerEntry.line_id == line.id))
        return line.id, line.amount_fen - int(used or 0)
    reserve_fen = session.scalar(select(FiscalYear.reserve_fen).where(FiscalYear.year == year))
    if reserve_fen is None:
        raise NotFound(
            f"no fiscal year {year} with an emergency reserve",
            field="fiscal_year",
            allowed="set the year's budget first",
        )
    used = session.scalar(
        drawn.where(LedgerEntry.fiscal_year == year, LedgerEntry.kind == LedgerKind.reserve_draw)
    )
    return None, reserve_fen - int(used or 0)
