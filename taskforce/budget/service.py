"""Budget services (SPEC §4): the fiscal year and its reserve, zero-based lines,
the three reviews with the authority table, adjustments and reserve draws.

Every state change here is one transaction in the caller's session: the new
state, its decision-trail entry and its notifications (ARCHITECTURE.md rule 1).
Every command takes an idempotency key; a replay returns the first result.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.authority import Approver, may_approve, route_amount
from taskforce.budget.forms import (
    ProposeAdjustmentForm,
    ProposeLineForm,
    ReserveDrawForm,
    ReviewForm,
    SetFiscalYearForm,
    SubjectKind,
)
from taskforce.budget.models import (
    BudgetAdjustment,
    BudgetLine,
    BudgetReview,
    DisbursementSchedule,
    FiscalYear,
    LedgerEntry,
    LineStatus,
    ReviewStage,
)
from taskforce.budget.reserve import draw_on_reserve, reserve_drawn, reserve_left
from taskforce.context import Context
from taskforce.emergency.models import Emergency
from taskforce.emergency.queries import get_emergency
from taskforce.errors import DomainError, IllegalTransition, NotFound
from taskforce.idempotency import fingerprint, previous_result, remember
from taskforce.loop.models import Issue, TaskLevel, TaskNode
from taskforce.loop.states import unknown_issue
from taskforce.money import format_yuan, to_fen
from taskforce.org.models import Group, Member, Unit
from taskforce.org.service import active_member, unknown_unit
from taskforce.policy.schema import GroupKind, Policy


class FiscalYearResult(BaseModel):
    year: int
    total_fen: int
    reserve_fen: int
    reserve_line_code: str
    changed: bool = True  # False: the year already had this total (nothing announced again)


class LineResult(BaseModel):
    line_id: int
    code: str
    status: str
    stages: list[str]  # the reviews this line needs, in order


class AdjustmentResult(BaseModel):
    adjustment_id: int
    line_code: str
    status: str
    stages: list[str]


class ReviewResult(BaseModel):
    review_id: int
    subject: str
    stage: str
    status: str  # of the line or adjustment after this review
    next_stage: str | None


class DrawResult(BaseModel):
    entry_id: int
    external_ref: str
    reserve_left_fen: int
    # The emergency's whole id (the form may name it by its first characters); empty in a
    # result remembered before this field existed.
    emergency_id: str = ""


def reserve_line_code(year: int) -> str:
    return f"FY{year}-RESERVE"


def required_reserve_fen(total_fen: int, policy: Policy) -> int:
    """The reserve a year must hold: its share of the total, rounded up to the fen."""
    share = Decimal(total_fen) * policy.budget.emergency_reserve_share
    return int(share.to_integral_value(rounding=ROUND_CEILING))


def minimum_total_fen(allocated_fen: int, policy: Policy) -> int | None:
    """The least annual total that still leaves `allocated_fen` after the reserve's share
    (the reserve is taken from the total, so the total must grow by more than it); None
    when the share is the whole total."""
    share = policy.budget.emergency_reserve_share
    if share >= 1:
        return None
    # total − ceil(total × share) ≥ allocated needs total ≥ allocated / (1 − share): start
    # at its floor and step up the fen or two the rounding of the reserve may add.
    total = int((Decimal(allocated_fen) / (1 - share)).to_integral_value(rounding=ROUND_FLOOR))
    while total - required_reserve_fen(total, policy) < allocated_fen:
        total += 1
    return total


def minimum_total_for_drawn_fen(drawn_fen: int, policy: Policy) -> int | None:
    """The least annual total whose reserve (its share, rounded up to the fen) still covers
    `drawn_fen` already drawn from it; None when something was drawn and the share is 0."""
    if drawn_fen <= 0:
        return 0
    share = policy.budget.emergency_reserve_share
    if share <= 0:
        return None
    # ceil(total × share) ≥ drawn needs total × share > drawn − 1: start at the least such
    # total and step the fen the division may have rounded away.
    total = int((Decimal(drawn_fen - 1) / share).to_integral_value(rounding=ROUND_FLOOR)) + 1
    while total > 0 and required_reserve_fen(total - 1, policy) >= drawn_fen:
        total -= 1
    while required_reserve_fen(total, policy) < drawn_fen:
        total += 1
    return total


def required_stages(amount_fen: int, cross_department: bool, policy: Policy) -> list[ReviewStage]:
    """三审 in policy order; the final approval is the executive group's when the amount is
    within its authority (SPEC §1), otherwise the leadership group's."""
    routing = route_amount(amount_fen, policy.authority, cross_department=cross_department)
    reviews = [ReviewStage(s) for s in policy.budget.reviews if s != ReviewStage.leadership]
    final = ReviewStage.executive if routing.group == Approver.executive else ReviewStage.leadership
    return [*reviews, final]


# --- the fiscal year ---------------------------------------------------------


def set_fiscal_year(
    session: Session, ctx: Context, form: SetFiscalYearForm, *, actor: str, key: str | None = None
) -> FiscalYearResult:
    form = SetFiscalYearForm.model_validate(form.model_dump())
    seen = fingerprint(form)
    if (done := previous_result(session, key, seen=seen)) is not None:
        return FiscalYearResult.model_validate(done)
    _member, group = _reviewer(session, form.decided_by, field="decided_by")
    if group.kind != GroupKind.leadership:
        raise DomainError(
            f"{form.decided_by} is in {group.code}; the annual budget and its adjustment are "
            "major decisions of the leadership group (SPEC §1)",
            field="decided_by",
            allowed="a member of the leadership group",
        )
    total = to_fen(form.total)
    reserve = required_reserve_fen(total, ctx.policy)
    _check_total_covers(session, ctx.policy, form.year, total, reserve)
    now = ctx.now()
    year = session.get(FiscalYear, form.year)
    previous = (
        None if year is None else {"total_fen": year.total_fen, "reserve_fen": year.reserve_fen}
    )
    code = reserve_line_code(form.year)
    if previous == {"total_fen": total, "reserve_fen": reserve}:
        # The same decision entered again (a re-run, a second click): nothing changes, so
        # nothing goes on the trail or out to the groups a second time.
        return FiscalYearResult(
            year=form.year,
            total_fen=total,
            reserve_fen=reserve,
            reserve_line_code=code,
            changed=False,
        )
    if year is None:
        year = FiscalYear(year=form.year, total_fen=total, reserve_fen=reserve)
        session.add(year)
        session.flush()
    year.total_fen, year.reserve_fen = total, reserve
    line = session.scalar(select(BudgetLine).where(BudgetLine.code == code))
    if line is None:
        line = BudgetLine(
            code=code,
            fiscal_year=form.year,
            is_reserve=True,
            purpose="应急预留：仅限应急事项动用",
            output_target="emergencies met without delay",
            benefit_target="no emergency waits for money",
            amount_fen=reserve,
            status=LineStatus.approved,
            approved_by=GroupKind.leadership.value,
            approved_at=now,
            created_at=now,
        )
        session.add(line)
    line.amount_fen = reserve
    session.flush()
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="budget.year_set",
        subject_type="fiscal_year",
        subject_id=form.year,
        payload={
            "total_fen": total,
            "reserve_fen": reserve,
            "previous": previous,
            "decided_by": form.decided_by,
        },
        notify="budget_year_set",
        context={"year": form.year, "total": _yuan(total), "reserve": _yuan(reserve)},
    )
    result = FiscalYearResult(
        year=form.year, total_fen=total, reserve_fen=reserve, reserve_line_code=code
    )
    remember(session, key, "budget.set_fiscal_year", result.model_dump(), now, seen=seen)
    return result


def _check_total_covers(
    session: Session, policy: Policy, year: int, total: int, reserve: int
) -> None:
    """A new total must leave room for what is already committed: the approved lines after
    the reserve, and in the reserve what has already been drawn from it (a total cut below
    them made the leadership's decision the author of the overspend the weekly audit then
    found). Refused naming both and the least total that covers them."""
    allocated = _allocated_fen(session, year)
    drawn = reserve_drawn(session, year)
    problems = []
    if allocated > total - reserve:
        problems.append(
            f"approved lines already allocate {format_yuan(allocated, 'en')}, more than the "
            f"{format_yuan(total - reserve, 'en')} left after the emergency reserve"
        )
    if drawn > reserve:
        problems.append(
            f"{format_yuan(drawn, 'en')} has already been drawn from the emergency reserve, "
            f"more than the reserve of {format_yuan(reserve, 'en')} this total would leave "
            f"(budget.emergency_reserve_share {policy.budget.emergency_reserve_share})"
        )
    if not problems:
        return
    for_lines = minimum_total_fen(allocated, policy) if allocated else 0
    for_drawn = minimum_total_for_drawn_fen(drawn, policy)
    if for_lines is None or for_drawn is None:
        share = policy.budget.emergency_reserve_share
        allowed = f"no total: budget.emergency_reserve_share is {share} in config/taskforce.yaml"
    else:
        # As the amounts beside it (it wrote 29999999.91 CNY by CNY 3,000,000.00).
        allowed = f"at least {format_yuan(max(for_lines, for_drawn), 'en')}"
    raise DomainError("; ".join(problems), field="total", allowed=allowed)


def _allocated_fen(session: Session, year: int, *, excluding: int | None = None) -> int:
    query = select(func.coalesce(func.sum(BudgetLine.amount_fen), 0)).where(
        BudgetLine.fiscal_year == year,
        BudgetLine.is_reserve.is_(False),
        BudgetLine.status == LineStatus.approved,
    )
    if excluding is not None:
        query = query.where(BudgetLine.id != excluding)
    return int(session.scalar(query) or 0)


def _yuan(fen: int) -> str:
    from taskforce.money import to_yuan

    return str(to_yuan(fen))


# --- lines -------------------------------------------------------------------


def propose_line(
    session: Session, ctx: Context, form: ProposeLineForm, *, actor: str, key: str | None = None
) -> LineResult:
    """零基预算: a line exists only for an issue or an action item, with its targets."""
    form = ProposeLineForm.model_validate(form.model_dump())
    seen = fingerprint(form)
    if (done := previous_result(session, key, seen=seen)) is not None:
        return LineResult.model_validate(done)
    if session.get(FiscalYear, form.fiscal_year) is None:
        raise NotFound(
            f"no budget is set for {form.fiscal_year}",
            field="fiscal_year",
            allowed="a year set with budget-set-fiscal-year",
        )
    if session.scalar(select(BudgetLine.id).where(BudgetLine.code == form.code)) is not None:
        raise DomainError(f"line {form.code!r} exists already", field="code", allowed="a new code")
    issue_id = task_id = None
    if form.issue_number:
        issue_id = session.scalar(select(Issue.id).where(Issue.number == form.issue_number))
        if issue_id is None:
            raise unknown_issue(session, form.issue_number)
    if form.action_item_id:
        task = session.get(TaskNode, form.action_item_id)
        if task is None or task.level != TaskLevel.action_item:
            raise NotFound(
                f"no action item {form.action_item_id}",
                field="action_item_id",
                allowed="the id of an action item (行动项) of a filed plan",
            )
        if issue_id is not None and task.issue_id != issue_id:
            raise DomainError(
                f"action item {task.id} belongs to another issue",
                field="action_item_id",
                allowed=f"an action item of {form.issue_number}",
            )
        task_id, issue_id = task.id, issue_id or task.issue_id
    owner_unit_id = None
    if form.owner_unit:
        owner_unit_id = session.scalar(select(Unit.id).where(Unit.code == form.owner_unit))
        if owner_unit_id is None:
            raise unknown_unit(session, form.owner_unit, "owner_unit")
    for i, item in enumerate(form.schedule):
        if item.due_date.year != form.fiscal_year:
            raise DomainError(
                f"{item.due_date} is outside fiscal year {form.fiscal_year}",
                field=f"schedule[{i}].due_date",
                allowed=f"a date in {form.fiscal_year}",
            )
    now = ctx.now()
    amount = to_fen(form.amount)
    line = BudgetLine(
        code=form.code,
        fiscal_year=form.fiscal_year,
        issue_id=issue_id,
        task_id=task_id,
        is_reserve=False,
        purpose=form.purpose,
        output_target=form.output_target,
        benefit_target=form.benefit_target,
        amount_fen=amount,
        cross_department=form.cross_department,
        owner_unit_id=owner_unit_id,
        status=LineStatus.proposed,
        classification=form.classification,
        created_at=now,
    )
    session.add(line)
    session.flush()
    session.add_all(
        DisbursementSchedule(line_id=line.id, due_date=s.due_date, amount_fen=to_fen(s.amount))
        for s in form.schedule
    )
    stages = required_stages(amount, form.cross_department, ctx.policy)
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="budget.line_proposed",
        subject_type="budget_line",
        subject_id=line.id,
        payload={
            "code": line.code,
            "amount_fen": amount,
            "issue_id": issue_id,
            "task_id": task_id,
            "stages": [s.value for s in stages],
        },
        classification=form.classification,
        notify="budget_review_due",
        context={"reviewer": stages[0].value, "line": line.code, "amount": _yuan(amount)},
    )
    result = LineResult(
        line_id=line.id, code=line.code, status=line.status.value, stages=[s.value for s in stages]
    )
    remember(session, key, "budget.propose_line", result.model_dump(), now, seen=seen)
    return result


def propose_adjustment(
    session: Session,
    ctx: Context,
    form: ProposeAdjustmentForm,
    *,
    actor: str,
    key: str | None = None,
) -> AdjustmentResult:
    form = ProposeAdjustmentForm.model_validate(form.model_dump())
    seen = fingerprint(form)
    if (done := previous_result(session, key, seen=seen)) is not None:
        return AdjustmentResult.model_validate(done)
    line = _line(session, form.line_code)
    if line.is_reserve:
        raise IllegalTransition(
            f"{line.code} is the emergency reserve, set with the fiscal year",
            field="line_code",
            allowed="a budget line; the reserve follows the year's total (budget set-year)",
        )
    if line.status != LineStatus.approved:
        raise IllegalTransition(
            f"line {line.code} is {line.status.value}",
            field="line_code",
            allowed="an approved line (a proposed line is changed by a new proposal)",
        )
    delta = to_fen(form.delta)
    _check_cut(session, line, delta)
    now = ctx.now()
    adjustment = BudgetAdjustment(
        line_id=line.id,
        delta_fen=delta,
        reason=form.reason,
        status=LineStatus.proposed,
        requested_at=now,
    )
    session.add(adjustment)
    session.flush()
    stages = required_stages(
        adjustment_authority_fen(line.amount_fen, delta), line.cross_department, ctx.policy
    )
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="budget.adjustment_proposed",
        subject_type="budget_adjustment",
        subject_id=adjustment.id,
        payload={"line": line.code, "delta_fen": delta, "stages": [s.value for s in stages]},
        classification=line.classification,
        notify="budget_review_due",
        context={"reviewer": stages[0].value, "line": line.code, "amount": _yuan(delta)},
    )
    result = AdjustmentResult(
        adjustment_id=adjustment.id,
        line_code=line.code,
        status=adjustment.status.value,
        stages=[s.value for s in stages],
    )
    remember(session, key, "budget.propose_adjustment", result.model_dump(), now, seen=seen)
    return result


def _spent_fen(session: Session, line: BudgetLine) -> int:
    """What the ledger has paid out of this line so far."""
    spent = session.scalar(
        select(func.sum(LedgerEntry.amount_fen)).where(LedgerEntry.line_id == line.id)
    )
    return int(spent or 0)


def _check_cut(
    session: Session, line: BudgetLine, delta_fen: int, *, at_approval: bool = False
) -> None:
    """A cut may take a line down to what it has paid out, not below: an approved cut below
    it would make the approvers the authors of the overspend the weekly audit then reports.
    At the approval the approver cannot change the cut: the refusal says what to do."""
    if delta_fen >= 0:
        return  # an increase is never a cut, even of a line already overspent
    floor = _spent_fen(session, line)
    if line.amount_fen + delta_fen < floor:
        most = f"-{_yuan(line.amount_fen - floor)}"
        raise DomainError(
            f"would leave line {line.code} at {_yuan(line.amount_fen + delta_fen)} CNY"
            + (f", below the {_yuan(floor)} CNY already paid out of it" if floor else ""),
            field="adjustment_id" if at_approval else "delta",
            allowed=f"reject this adjustment; a new one may cut at most {most[1:]} CNY"
            if at_approval
            else f"at least {most}",
        )


def adjustment_authority_fen(line_amount_fen: int, delta_fen: int) -> int:
    """The amount an adjustment is approved at: the larger of the line before and after it,
    so an increase cannot split a line past the approver's authority, and a cut of a
    leadership line stays with the leadership group."""
    return max(line_amount_fen, line_amount_fen + delta_fen)


def _line(session: Session, code: str) -> BudgetLine:
    line = session.scalar(select(BudgetLine).where(BudgetLine.code == code))
    if line is None:
        raise NotFound(
            f"no budget line {code!r}", field="line_code", allowed="the code of a budget line"
        )
    return line


# --- the three reviews -------------------------------------------------------


def review(
    session: Session, ctx: Context, form: ReviewForm, *, actor: str, key: str | None = None
) -> ReviewResult:
    """One review (三审) of a line or adjustment, in order; the last one is the approval and
    must be within the approver's authority (SPEC §1 counting conventions)."""
    form = ReviewForm.model_validate(form.model_dump())
    seen = fingerprint(form)
    if (done := previous_result(session, key, seen=seen)) is not None:
        return ReviewResult.model_validate(done)
    policy = ctx.policy
    adjustment: BudgetAdjustment | None = None
    if form.subject == SubjectKind.line:
        line = _line(session, form.line_code or "")
        subject, status = line, line.status
        amount = line.amount_fen
        if line.is_reserve:
            raise IllegalTransition(
                "the reserve line is set with the fiscal year",
                field="line_code",
                allowed="a proposed line",
            )
    else:
        adjustment = session.get(BudgetAdjustment, form.adjustment_id)
        if adjustment is None:
            raise NotFound(
                f"no adjustment {form.adjustment_id}",
                field="adjustment_id",
                allowed="an adjustment id",
            )
        line = session.get(BudgetLine, adjustment.line_id)
        if line.is_reserve and form.approved:  # proposed before the reserve was closed to
            # adjustments (propose_adjustment): it may still be rejected, never approved.
            raise IllegalTransition(
                f"{line.code} is the emergency reserve, set with the fiscal year",
                field="adjustment_id",
                allowed="an adjustment of a budget line; this one may only be rejected",
            )
        subject, status = adjustment, adjustment.status
        amount = adjustment_authority_fen(line.amount_fen, adjustment.delta_fen)
    if status not in (LineStatus.proposed, LineStatus.in_review):
        raise IllegalTransition(
            f"the {form.subject.value} is {status.value}; reviews are closed",
            field=form.subject.value,
            allowed="a proposed or in-review line or adjustment",
        )
    member, group = _reviewer(session, form.reviewer)
    stages = required_stages(amount, line.cross_department, policy)
    subject_filter = (
        BudgetReview.line_id == line.id
        if adjustment is None
        else BudgetReview.adjustment_id == adjustment.id
    )
    if adjustment is None:
        subject_filter = subject_filter & BudgetReview.adjustment_id.is_(None)
    done_stages = set(
        session.scalars(
            select(BudgetReview.stage).where(subject_filter, BudgetReview.approved.is_(True))
        )
    )
    next_stage = next(s for s in stages if s not in done_stages and not _final_done(s, done_stages))
    is_final = next_stage == stages[-1]
    if is_final:
        check = may_approve(
            group.kind, amount, policy.authority, cross_department=line.cross_department
        )
        if not check.allowed:
            raise DomainError(
                f"{group.code} may not approve {_yuan(amount)} CNY: {check.rule}",
                field="reviewer",
                allowed=f"a member of the {check.required.value} group",
            )
        stage = ReviewStage(group.kind.value)
    else:
        if group.kind.value != next_stage.value:
            order = " → ".join(s.value for s in stages)
            raise DomainError(
                f"the next review is the {next_stage.value} review; {member.code} is in {group.code}",
                field="reviewer",
                allowed=f"a member of the {next_stage.value} group (order: {order})",
            )
        stage = next_stage
    now = ctx.now()
    row = BudgetReview(
        line_id=line.id,
        adjustment_id=adjustment.id if adjustment else None,
        stage=stage,
        reviewer_member_id=member.id,
        reviewer_group=group.code,
        approved=form.approved,
        amount_fen=amount,
        comment=form.comment,
        at=now,
    )
    session.add(row)
    if not form.approved:
        new_status = LineStatus.rejected
    elif is_final:
        new_status = LineStatus.approved
    else:
        new_status = LineStatus.in_review
    following = None if (not form.approved or is_final) else stages[stages.index(next_stage) + 1]
    if new_status == LineStatus.approved:
        _approve(session, ctx, line, adjustment, group.kind.value, now)
    if adjustment is None:
        line.status = new_status
    else:
        adjustment.status = new_status
        if new_status in (LineStatus.approved, LineStatus.rejected):
            adjustment.decided_at = now
            adjustment.approved_by = group.kind.value if new_status == LineStatus.approved else None
    session.flush()
    subject_type = "budget_line" if adjustment is None else "budget_adjustment"
    decided = new_status in (LineStatus.approved, LineStatus.rejected)
    events.record(
        session,
        policy,
        at=now,
        actor=actor,
        action=f"budget.review_{'approved' if form.approved else 'rejected'}",
        subject_type=subject_type,
        subject_id=subject.id,
        payload={
            "line": line.code,
            "stage": stage.value,
            "reviewer": member.code,
            "amount_fen": amount,
            "status": new_status.value,
            "comment": form.comment,
        },
        classification=line.classification,
        notify="budget_decided" if decided else "budget_review_due",
        context={
            "reviewer": following.value if following else "",
            "line": line.code,
            "status": new_status.value,
            "amount": _yuan(amount),
        },
    )
    result = ReviewResult(
        review_id=row.id,
        subject=f"{subject_type}:{subject.id}",
        stage=stage.value,
        status=new_status.value,
        next_stage=following.value if following else None,
    )
    remember(session, key, "budget.review", result.model_dump(), now, seen=seen)
    return result


def _final_done(stage: ReviewStage, done: set[ReviewStage]) -> bool:
    # The approval stage is done by whichever group approved it (leadership may approve
    # what the executive could); the review stages only by themselves.
    approvals = {ReviewStage.executive, ReviewStage.leadership}
    return stage in approvals and bool(done & approvals)


def _reviewer(session: Session, code: str, *, field: str = "reviewer") -> tuple[Member, Group]:
    member = active_member(session, code, field=field)
    return member, session.get(Group, member.group_id)


def _approve(
    session: Session,
    ctx: Context,
    line: BudgetLine,
    adjustment: BudgetAdjustment | None,
    approver: str,
    now,
) -> None:
    if adjustment is not None:
        # Payments may have landed since the proposal.
        _check_cut(session, line, adjustment.delta_fen, at_approval=True)
    year = session.get(FiscalYear, line.fiscal_year)
    available = year.total_fen - year.reserve_fen
    others = _allocated_fen(session, line.fiscal_year, excluding=line.id)
    new_amount = line.amount_fen + (adjustment.delta_fen if adjustment else 0)
    if adjustment is not None and adjustment.delta_fen <= 0:
        pass  # a cut never over-allocates
    elif others + new_amount > available:
        raise DomainError(
            f"approving would allocate {_yuan(others + new_amount)} CNY of the "
            f"{_yuan(available)} CNY of {line.fiscal_year} left after the emergency reserve",
            field="amount",
            allowed=f"at most {_yuan(max(available - others, 0))} CNY for this line",
        )
    if adjustment is None:
        line.approved_by, line.approved_at = approver, now
    else:
        line.amount_fen = new_amount


# --- the emergency reserve ---------------------------------------------------


def reserve_left_fen(session: Session, year: int) -> int:
    """What is left of the year's emergency reserve (0 when the year has no budget)."""
    try:
        return reserve_left(session, year)[1]
    except NotFound:
        return 0


def draw_reserve(
    session: Session, ctx: Context, form: ReserveDrawForm, *, actor: str, key: str | None = None
) -> DrawResult:
    """应急预留: only an open emergency may draw on the reserve; every draw is on the trail."""
    form = ReserveDrawForm.model_validate(form.model_dump())
    seen = fingerprint(form)
    if (done := previous_result(session, key, seen=seen)) is not None:
        return DrawResult.model_validate(done)
    emergency = find_emergency(session, form.emergency, timezone=ctx.policy.timezone)
    if emergency is None:
        raise NotFound(
            f"no emergency {form.emergency!r}",
            field="emergency",
            allowed="an emergency's id as its pages show it, whole or its first 8 characters "
            "or more",
        )
    if form.entry_date.year != form.fiscal_year:
        raise DomainError(
            f"{form.entry_date} is outside fiscal year {form.fiscal_year}",
            field="entry_date",
            allowed=f"a date in {form.fiscal_year}",
        )
    external_ref = f"voucher:{form.voucher}"
    existing = session.scalar(select(LedgerEntry).where(LedgerEntry.external_ref == external_ref))
    if existing is not None:
        raise DomainError(
            f"voucher {form.voucher!r} is on the ledger already (entry {existing.id})",
            field="voucher",
            allowed="a voucher not yet entered",
        )
    draw = draw_on_reserve(
        session,
        ctx,
        emergency,
        amount_fen=to_fen(form.amount),
        approved_by=form.approved_by,
        approver=form.approver,
        cross_department=form.cross_department,
        fiscal_year=form.fiscal_year,
        entry_date=form.entry_date,
        payee=form.payee,
        description=form.description,
        external_ref=external_ref,
        actor=actor,
        action="budget.reserve_drawn",
    )
    result = DrawResult(
        entry_id=draw.ledger_entry_id,
        external_ref=external_ref,
        reserve_left_fen=draw.remaining_fen,
        emergency_id=emergency.public_id,
    )
    remember(session, key, "budget.draw_reserve", result.model_dump(), ctx.now(), seen=seen)
    return result


def find_emergency(session: Session, ref: str, *, timezone: str | None = None) -> Emergency | None:
    ref = ref.strip()
    if ref.isdigit():
        found = session.get(Emergency, int(ref))
        if found is not None:
            return found
    try:  # the whole id, or its first characters (taskforce/emergency/queries.py)
        return get_emergency(session, ref, timezone=timezone)
    except NotFound:
        return None
    except DomainError as exc:  # first characters several ids share: said as the emergency
        # forms say it (an operator trial), under this form's field
        raise DomainError(exc.message, field="emergency", allowed=exc.allowed) from None
