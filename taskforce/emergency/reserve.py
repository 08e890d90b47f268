"""Draws on the emergency reserve from the emergency side; the rules and the writing
live in taskforce/budget/reserve.py (one implementation for both entry points)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from taskforce.budget.reserve import draw_on_reserve, reserve_left
from taskforce.context import Context
from taskforce.emergency.forms import ReserveDrawForm
from taskforce.emergency.queries import get_emergency
from taskforce.idempotency import fingerprint, previous_result, remember
from taskforce.money import to_fen

__all__ = ["request_reserve_draw", "reserve_left"]


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
    seen = fingerprint(public_id, form)
    if (done := previous_result(session, key, seen=seen)) is not None:
        return done
    emergency = get_emergency(session, public_id, lock=True)
    draw = draw_on_reserve(
        session,
        ctx,
        emergency,
        amount_fen=to_fen(form.amount),
        approved_by=form.approved_by,
        approver=form.approver,
        cross_department=form.cross_department,
        fiscal_year=ctx.today().year,
        entry_date=ctx.today(),
        payee=form.payee,
        description=form.description,
        external_ref=key,
        actor=actor,
        action="emergency.reserve_drawn",
        emergency_field="emergency_id",
    )
    detail = dict(draw.__dict__)
    remember(session, key, "reserve_draw", detail, ctx.now(), seen=seen)
    return detail
