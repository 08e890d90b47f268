"""Fiscal year and reserve, zero-based lines, the three reviews and the authority table."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from taskforce.budget import service
from taskforce.budget.forms import ProposeLineForm, ReserveDrawForm, SetFiscalYearForm
from taskforce.budget.models import (
    BudgetAdjustment,
    BudgetLine,
    BudgetReview,
    FiscalYear,
    LedgerEntry,
    LineStatus,
)
from taskforce.emergency.models import Emergency, EmergencyEvent
from taskforce.errors import DomainError, IllegalTransition, NotFound
from taskforce.notify.models import OutboxMessage
from taskforce.trail.models import TrailEntry
from tests.budget.conftest import YEAR, add_emergency, csv_text


def test_fiscal_year_holds_the_reserve_share_as_a_reserve_line(books):
    result = books.set_year("123456789.01")
    assert result.total_fen == 12_345_678_901
    # 10 % rounded up to the fen: the reserve is never below its share.
    assert result.reserve_fen == 1_234_567_891
    line = books.scalar(select(BudgetLine).where(BudgetLine.code == result.reserve_line_code))
    assert line.is_reserve and line.amount_fen == result.reserve_fen
    assert line.status == LineStatus.approved
    actions = books.scalars(select(TrailEntry.action))
    assert "budget.year_set" in actions


def test_resetting_a_year_below_its_allocations_is_refused(books):
    books.set_year("10000000.00")
    books.line("A-1", "9000000.00", approver="L1")
    with pytest.raises(DomainError, match="total"):
        books.set_year("9500000.00")
    assert books.scalar(select(FiscalYear.total_fen)) == 1_000_000_000


def test_a_line_without_issue_or_action_item_is_refused_by_the_form():
    with pytest.raises(ValidationError, match="issue_number or action_item_id"):
        ProposeLineForm(
            code="X-1",
            fiscal_year=YEAR,
            purpose="p" * 3,
            output_target="o" * 3,
            benefit_target="b" * 3,
            amount=Decimal("1"),
        )


def test_a_line_for_an_unknown_issue_is_refused_naming_the_field(books):
    books.set_year()
    form = ProposeLineForm(
        code="X-1",
        fiscal_year=YEAR,
        issue_number="TF-2026-99999",
        purpose="ppp",
        output_target="ooo",
        benefit_target="bbb",
        amount=Decimal("1"),
    )
    with books.tx() as s, pytest.raises(NotFound, match="issue_number") as refused:
        service.propose_line(s, books.ctx, form, actor="W3")
    assert books.scalar(select(func.count(BudgetLine.id))) == 1  # only the reserve line
    # What is allowed: an existing number, the latest one named (none is recorded here).
    assert "none is recorded yet" in refused.value.allowed
    latest = books.issue()
    with books.tx() as s, pytest.raises(NotFound) as refused:
        service.propose_line(s, books.ctx, form, actor="W3")
    assert refused.value.allowed == f"an existing issue number, e.g. the latest, {latest}"


def test_a_line_for_an_unknown_unit_lists_the_units(books):
    books.set_year()
    form = _line_form(issue_number=books.issue(), owner_unit="nowhere")
    with books.tx() as s, pytest.raises(NotFound, match="owner_unit") as refused:
        service.propose_line(s, books.ctx, form, actor="W3")
    assert "data-bureau" in refused.value.allowed and "finance" in refused.value.allowed


def test_proposal_notifies_the_compliance_officer_in_the_same_transaction(books):
    books.set_year()
    books.propose("A-1", "100.00")
    rows = books.scalars(
        select(OutboxMessage).where(OutboxMessage.event_kind == "budget_review_due")
    )
    assert [r.audience for r in rows] == ["compliance"]


@pytest.mark.parametrize(
    ("amount", "executive_may"),
    [
        ("4999999.99", True),
        ("5000000.00", True),  # 以下 includes 5,000,000 itself
        ("5000000.01", False),
        ("9999999.99", False),
        ("10000000.00", False),
    ],
)
def test_executive_authority_boundaries(books, amount, executive_may):
    books.set_year("100000000.00")
    proposed = books.propose("A-1", amount)
    assert proposed.stages[-1] == ("executive" if executive_may else "leadership")
    books.review("C1", code="A-1")
    books.review("V1", code="A-1")
    if executive_may:
        result = books.review("E1", code="A-1")
        assert result.status == "approved" and result.stage == "executive"
        return
    with pytest.raises(DomainError) as refused:
        books.review("E1", code="A-1")
    # The refusal names the rule of the authority table.
    assert "exceed the executive group's authority" in str(refused.value)
    assert (
        books.scalar(select(BudgetLine.status).where(BudgetLine.code == "A-1"))
        == LineStatus.in_review
    )
    result = books.review("L1", code="A-1")
    assert result.status == "approved" and result.stage == "leadership"


@pytest.mark.parametrize(
    ("amount", "approver"), [("9999999.99", "leadership"), ("10000000.00", "leadership")]
)
def test_cross_department_allocation_of_ten_million_is_leadership(books, amount, approver):
    books.set_year("100000000.00")
    proposed = books.propose("A-1", amount, cross=True)
    assert proposed.stages == ["compliance", "evaluator", approver]


def test_leadership_may_give_the_approval_the_executive_could_give(books):
    books.set_year()
    books.line("A-1", "100.00", approver="L1")
    line = books.scalar(select(BudgetLine).where(BudgetLine.code == "A-1"))
    assert line.status == LineStatus.approved and line.approved_by == "leadership"


def test_reviews_go_in_order(books):
    books.set_year()
    books.propose("A-1", "100.00")
    with pytest.raises(DomainError, match="next review is the compliance review"):
        books.review("V1", code="A-1")
    books.review("C1", code="A-1")
    with pytest.raises(DomainError, match="next review is the evaluator review"):
        books.review("E1", code="A-1")
    with pytest.raises(DomainError, match="next review is the evaluator review"):
        books.review("C1", code="A-1")
    books.review("V1", code="A-1")
    with pytest.raises(DomainError, match="no approval authority"):
        books.review("W1", code="A-1")
    assert books.review("E1", code="A-1").status == "approved"
    with pytest.raises(IllegalTransition):
        books.review("E1", code="A-1")
    stages = books.scalars(select(BudgetReview.stage).order_by(BudgetReview.id))
    assert [s.value for s in stages] == ["compliance", "evaluator", "executive"]


def test_a_rejection_ends_the_procedure(books):
    books.set_year()
    books.propose("A-1", "100.00")
    assert books.review("C1", code="A-1", approved=False).status == "rejected"
    with pytest.raises(IllegalTransition):
        books.review("V1", code="A-1")


def test_approval_may_not_allocate_the_reserve(books):
    books.set_year("1000000.00")  # 900,000 allocatable
    books.line("A-1", "900000.00")
    books.propose("A-2", "0.01")
    books.review("C1", code="A-2")
    books.review("V1", code="A-2")
    with pytest.raises(DomainError, match="after the emergency reserve"):
        books.review("E1", code="A-2")


def test_adjustment_follows_the_same_procedure_and_changes_the_line(books):
    books.set_year()
    books.line("A-1", "1000000.00")
    adj = books.adjust("A-1", "250000.50", approver=None)
    assert adj.stages == ["compliance", "evaluator", "executive"]
    assert (
        books.scalar(select(BudgetLine.amount_fen).where(BudgetLine.code == "A-1")) == 100_000_000
    )
    with pytest.raises(DomainError, match="next review is the compliance review"):
        books.review("E1", adjustment=adj.adjustment_id)
    for reviewer in ("C1", "V1", "E1"):
        books.review(reviewer, adjustment=adj.adjustment_id)
    assert (
        books.scalar(select(BudgetLine.amount_fen).where(BudgetLine.code == "A-1")) == 125_000_050
    )


def test_an_adjustment_past_the_executive_maximum_needs_leadership(books):
    books.set_year()
    books.line("A-1", "4900000.00")
    adj = books.adjust("A-1", "100000.01", approver=None)  # 5,000,000.01 after it
    assert adj.stages[-1] == "leadership"
    books.review("C1", adjustment=adj.adjustment_id)
    books.review("V1", adjustment=adj.adjustment_id)
    with pytest.raises(DomainError, match="exceed the executive group's authority"):
        books.review("E1", adjustment=adj.adjustment_id)
    books.review("L1", adjustment=adj.adjustment_id)
    assert (
        books.scalar(select(BudgetLine.amount_fen).where(BudgetLine.code == "A-1")) == 500_000_001
    )


def test_an_adjustment_landing_exactly_on_the_maximum_stays_with_the_executive(books):
    books.set_year()
    books.line("A-1", "4900000.00")
    adj = books.adjust("A-1", "100000.00")
    assert adj.stages[-1] == "executive"
    assert (
        books.scalar(select(BudgetLine.amount_fen).where(BudgetLine.code == "A-1")) == 500_000_000
    )


def _draw(books, emergency, amount="1000.00", voucher="R-1"):
    form = ReserveDrawForm(
        fiscal_year=YEAR,
        emergency=str(emergency),
        entry_date=books.ctx.today(),
        amount=Decimal(amount),
        payee="Pumps Ltd",
        description="pumps for the flooded hall",
        voucher=voucher,
        approver="E1",
    )
    with books.tx() as s:
        return service.draw_reserve(s, books.ctx, form, actor="E1")


def test_reserve_draw_for_an_open_emergency_is_on_the_trail(books):
    books.set_year("1000000.00")
    emergency = add_emergency(books)
    result = _draw(books, emergency, "1000.00")
    assert result.reserve_left_fen == 10_000_000 - 100_000
    entry = books.scalar(select(LedgerEntry))
    assert entry.emergency_id == emergency and entry.amount_fen == 100_000
    assert books.scalar(select(EmergencyEvent.kind)) == "reserve_draw"
    assert "budget.reserve_drawn" in books.scalars(select(TrailEntry.action))
    audiences = set(
        books.scalars(
            select(OutboxMessage.audience).where(OutboxMessage.event_kind == "reserve_drawn")
        )
    )
    assert audiences == {"leadership", "executive", "compliance"}


@pytest.mark.parametrize(
    ("status", "drill"), [("resolved", False), ("closed", False), ("acknowledged", True)]
)
def test_reserve_draw_refused_without_an_open_real_emergency(books, status, drill):
    books.set_year("1000000.00")
    emergency = add_emergency(books, status=status, drill=drill)
    with pytest.raises(DomainError, match="emergency"):
        _draw(books, emergency)
    assert books.scalar(select(func.count(LedgerEntry.id))) == 0


def test_reserve_draw_names_its_emergency_by_the_first_characters_of_its_id(books):
    """As the emergency forms do (README: emergencies); in either case."""
    books.set_year("1000000.00")
    emergency = add_emergency(books)
    public_id = books.scalar(select(Emergency.public_id).where(Emergency.id == emergency))
    _draw(books, public_id[:8].upper(), "1000.00")
    assert books.scalar(select(LedgerEntry.emergency_id)) == emergency


def test_reserve_draw_refused_for_an_unknown_emergency_and_beyond_the_reserve(books):
    books.set_year("1000000.00")
    with pytest.raises(NotFound, match="emergency") as refused:
        _draw(books, 999)
    # What to type, as the form's help says it (a trial: "an emergency id or public id").
    assert "first 8 characters or more" in refused.value.allowed
    emergency = add_emergency(books)
    _draw(books, emergency, "99999.99", voucher="R-1")
    with pytest.raises(DomainError, match="amount"):
        _draw(books, emergency, "0.02", voucher="R-2")
    _draw(books, emergency, "0.01", voucher="R-3")  # exactly what is left
    with books.tx() as s:
        assert service.reserve_left_fen(s, YEAR) == 0


def test_replayed_command_returns_the_first_result(books):
    with books.tx() as s:
        first = service.set_fiscal_year(
            s,
            books.ctx,
            SetFiscalYearForm(year=YEAR, total=Decimal("100"), decided_by="L1"),
            actor="L1",
            key="run-1",
        )
    with books.tx() as s:
        again = service.set_fiscal_year(
            s,
            books.ctx,
            SetFiscalYearForm(year=YEAR, total=Decimal("100"), decided_by="L1"),
            actor="L1",
            key="run-1",
        )
    assert first == again
    assert books.scalars(select(TrailEntry.action)).count("budget.year_set") == 1


def test_the_same_total_entered_again_is_not_announced_again(books):
    books.set_year("100000000.00")
    trail = books.scalars(select(TrailEntry.action)).count("budget.year_set")
    sent = books.scalar(
        select(func.count(OutboxMessage.id)).where(OutboxMessage.event_kind == "budget_year_set")
    )
    again = books.set_year("100000000.00")
    assert again.changed is False and again.total_fen == 10_000_000_000
    assert books.scalars(select(TrailEntry.action)).count("budget.year_set") == trail
    assert (
        books.scalar(
            select(func.count(OutboxMessage.id)).where(
                OutboxMessage.event_kind == "budget_year_set"
            )
        )
        == sent
    )
    # One fen more is a new decision: recorded and announced.
    changed = books.set_year("100000000.01")
    assert changed.changed is True
    assert books.scalars(select(TrailEntry.action)).count("budget.year_set") == trail + 1


def _action_item(books, issue_number: str, level: str = "action_item") -> int:
    import datetime as dt

    from taskforce.loop.models import Issue, Plan, TaskLevel, TaskNode

    with books.tx() as s:
        issue = s.scalar(select(Issue).where(Issue.number == issue_number))
        plan = Plan(
            issue_id=issue.id,
            round=1,
            filed_at=books.clock.now(),
            due_date=dt.date(2026, 3, 16),
            on_time=True,
        )
        s.add(plan)
        s.flush()
        node = TaskNode(
            plan_id=plan.id,
            issue_id=issue.id,
            level=TaskLevel(level),
            title="build the one-window system",
            deliverable="live in 12 districts",
        )
        s.add(node)
        s.flush()
        return node.id


def _line_form(**kwargs) -> ProposeLineForm:
    base = {
        "code": "T-1",
        "fiscal_year": YEAR,
        "purpose": "ppp",
        "output_target": "ooo",
        "benefit_target": "bbb",
        "amount": Decimal("10"),
    }
    return ProposeLineForm(**{**base, **kwargs})


def test_a_line_may_belong_to_an_action_item(books):
    books.set_year()
    issue = books.issue()
    item = _action_item(books, issue)
    with books.tx() as s:
        service.propose_line(s, books.ctx, _line_form(action_item_id=item), actor="W3")
    line = books.scalar(select(BudgetLine).where(BudgetLine.code == "T-1"))
    assert line.task_id == item and line.issue_id is not None  # the item's issue, for the audits


def test_a_line_may_not_belong_to_a_goal_or_another_issues_item(books):
    books.set_year()
    first, second = books.issue(), books.issue()
    goal = _action_item(books, first, level="goal")
    item = _action_item(books, second)
    with books.tx() as s, pytest.raises(NotFound, match="action_item_id"):
        service.propose_line(s, books.ctx, _line_form(action_item_id=goal), actor="W3")
    with books.tx() as s, pytest.raises(DomainError, match="another issue"):
        service.propose_line(
            s, books.ctx, _line_form(action_item_id=item, issue_number=first), actor="W3"
        )


@pytest.mark.parametrize(("member", "error"), [("E1", DomainError), ("NOBODY", NotFound)])
def test_only_the_leadership_group_sets_the_annual_budget(books, member, error):
    form = SetFiscalYearForm(year=YEAR, total=Decimal("100"), decided_by=member)
    with books.tx() as s, pytest.raises(error, match="decided_by") as refused:
        service.set_fiscal_year(s, books.ctx, form, actor=member)
    assert books.scalar(select(func.count(FiscalYear.year))) == 0
    if error is NotFound:  # the refusal lists the member codes there are
        assert "L1" in str(refused.value)


def test_a_total_too_small_for_the_approved_lines_names_the_least_total_that_works(books):
    books.set_year("1000000.00")  # 900,000 allocatable after the 10 % reserve
    books.line("A-1", "900000.00")
    with pytest.raises(DomainError, match="after the emergency reserve") as refused:
        books.set_year("999999.99")
    # 1,000,000.00 less its reserve of 100,000.00 still covers the 900,000.00 approved; the
    # message used to add the reserve of the total typed instead (900,100.00: refused again).
    assert "at least CNY 1,000,000.00" in str(refused.value)
    assert books.scalar(select(FiscalYear.total_fen)) == 100_000_000  # unchanged
    books.set_year("1000000.00")  # the total the message names is accepted


def test_the_least_total_for_an_awkward_allocation_is_exact_to_the_fen(books):
    books.set_year("100000000.00")
    books.line("A-1", "26500000.00", approver="L1")
    with pytest.raises(DomainError) as refused:
        books.set_year("1000.00")
    # 26,500,000 / 0.9 = 29,444,444.44…: the reserve of 29,444,444.44 is 2,944,444.45 (rounded
    # up to the fen), leaving 26,499,999.99; one fen more leaves 26,500,000.00.
    assert "at least CNY 29,444,444.45" in str(refused.value)
    with pytest.raises(DomainError):
        books.set_year("29444444.44")
    books.set_year("29444444.45")


def _year_state(books) -> tuple:
    """The year, its reserve line, its trail entries and notices: what a refusal leaves."""
    return (
        books.scalar(select(FiscalYear.total_fen)),
        books.scalar(select(FiscalYear.reserve_fen)),
        books.scalar(select(BudgetLine.amount_fen).where(BudgetLine.is_reserve.is_(True))),
        books.scalars(select(TrailEntry.action)).count("budget.year_set"),
        books.scalar(
            select(func.count(OutboxMessage.id)).where(
                OutboxMessage.event_kind == "budget_year_set"
            )
        ),
    )


def test_a_total_whose_reserve_is_below_what_was_drawn_from_it_is_refused(books):
    """An operator trial: after a draw of 100,000.00 from the reserve, `budget set-year 2026
    100` was accepted with a reserve of 10.00; only the next weekly audit saw the overspend.
    The least total is the one whose reserve (its share, rounded up to the fen) covers what
    was drawn: exactly that is accepted, one fen less is refused."""
    books.set_year("86000000.00")
    drawn = _draw(books, add_emergency(books), "100000.00")
    drawn_fen = 10_000_000
    assert books.scalar(select(LedgerEntry.amount_fen).where(LedgerEntry.id == drawn.entry_id)) == (
        drawn_fen
    )
    before = _year_state(books)
    with pytest.raises(DomainError) as refused:
        books.set_year("100")
    assert refused.value.field == "total"
    assert "CNY 100,000.00 has already been drawn from the emergency reserve" in str(refused.value)
    assert "reserve of CNY 10.00" in str(refused.value)
    assert _year_state(books) == before  # nothing changed, nothing announced

    share = books.ctx.policy.budget.emergency_reserve_share
    least = int(Decimal(drawn_fen - 1) / share) + 1  # ceil(least × share) ≥ drawn, not below
    required = service.required_reserve_fen
    assert required(least, books.ctx.policy) >= drawn_fen > required(least - 1, books.ctx.policy)
    least_yuan = f"{Decimal(least) / 100:.2f}"
    # In the format of the amounts beside it (it wrote "29999999.91 CNY" by "CNY 100,000.00").
    assert refused.value.allowed == f"at least CNY {Decimal(least) / 100:,.2f}"
    with pytest.raises(DomainError, match="drawn from the emergency reserve"):
        books.set_year(f"{Decimal(least - 1) / 100:.2f}")  # one fen short
    assert _year_state(books) == before
    accepted = books.set_year(least_yuan)  # exactly enough
    assert accepted.total_fen == least and accepted.reserve_fen >= drawn_fen
    with books.tx() as s:
        assert service.reserve_left_fen(s, YEAR) == accepted.reserve_fen - drawn_fen >= 0


def test_a_total_short_for_the_lines_and_the_draws_names_both_and_the_least_for_both(books):
    books.set_year("1000000.00")  # 900,000 allocatable after the 10 % reserve of 100,000
    books.line("A-1", "450000.00")
    _draw(books, add_emergency(books), "60000.00")
    before = _year_state(books)
    with pytest.raises(DomainError) as refused:
        books.set_year("100")
    message = str(refused.value)
    assert refused.value.field == "total"
    assert "approved lines already allocate CNY 450,000.00" in message
    assert "CNY 60,000.00 has already been drawn from the emergency reserve" in message
    policy = books.ctx.policy
    for_lines = service.minimum_total_fen(45_000_000, policy)
    share = policy.budget.emergency_reserve_share
    for_drawn = int(Decimal(6_000_000 - 1) / share) + 1
    least = max(for_lines, for_drawn)
    assert refused.value.allowed == f"at least CNY {Decimal(least) / 100:,.2f}"
    assert _year_state(books) == before
    with pytest.raises(DomainError):
        books.set_year(f"{Decimal(least - 1) / 100:.2f}")
    assert books.set_year(f"{Decimal(least) / 100:.2f}").total_fen == least


def test_the_reserve_line_is_not_adjusted_it_follows_the_year(books):
    """SPEC §4: the reserve is the year's share, set with the fiscal year. An adjustment of it
    (once approved through the three reviews) left it at any amount."""
    result = books.set_year("1000000.00")
    with pytest.raises(IllegalTransition, match="emergency reserve") as refused:
        books.adjust(result.reserve_line_code, "900000000.00", approver=None)
    assert refused.value.field == "line_code" and "set-year" in refused.value.allowed
    assert books.scalar(select(func.count(BudgetAdjustment.id))) == 0
    line = books.scalar(select(BudgetLine).where(BudgetLine.code == result.reserve_line_code))
    assert line.amount_fen == result.reserve_fen


def test_an_adjustment_proposed_for_the_reserve_before_the_rule_is_not_reviewed(books):
    result = books.set_year("1000000.00")
    with books.tx() as s:
        line = s.scalar(select(BudgetLine).where(BudgetLine.code == result.reserve_line_code))
        s.add(
            BudgetAdjustment(
                line_id=line.id,
                delta_fen=-100,
                reason="old",
                status=LineStatus.proposed,
                requested_at=books.clock.now(),
            )
        )
    adjustment = books.scalar(select(BudgetAdjustment.id))
    with pytest.raises(IllegalTransition, match="emergency reserve"):
        books.review("C1", adjustment=adjustment)
    assert books.scalar(select(func.count(BudgetReview.id))) == 0
    # It may still be rejected, so that it does not stay open for ever.
    books.review("C1", adjustment=adjustment, approved=False)
    assert books.scalar(select(BudgetAdjustment.status)) == LineStatus.rejected
    line = books.scalar(select(BudgetLine).where(BudgetLine.code == result.reserve_line_code))
    assert line.amount_fen == result.reserve_fen


def _pay(books, code: str, amount: str, voucher: str) -> None:
    day = books.ctx.today().isoformat()
    result = books.import_csv(csv_text(f"{voucher},{day},{code},,{amount},ACME,,"))
    assert result.imported == 1


def test_a_cut_may_take_a_line_down_to_what_it_paid_out_not_a_fen_below(books):
    books.set_year("100000000.00")
    books.line("A-1", "1000.00")
    _pay(books, "A-1", "400.00", "V1")
    with pytest.raises(DomainError, match="already paid out") as refused:
        books.adjust("A-1", "-600.01", approver=None)
    assert refused.value.field == "delta" and refused.value.allowed == "at least -600.00"
    assert books.scalar(select(func.count(BudgetAdjustment.id))) == 0
    books.adjust("A-1", "-600.00")  # exactly what was paid out is left
    assert books.scalar(select(BudgetLine.amount_fen).where(BudgetLine.code == "A-1")) == 40_000


def test_a_cut_paid_past_while_in_review_is_refused_at_its_approval(books):
    books.set_year("100000000.00")
    books.line("A-1", "1000.00")
    adj = books.adjust("A-1", "-600.00", approver=None)
    _pay(books, "A-1", "400.01", "V1")  # lands while the cut is reviewed
    books.review("C1", adjustment=adj.adjustment_id)
    books.review("V1", adjustment=adj.adjustment_id)
    with pytest.raises(DomainError, match="already paid out") as refused:
        books.review("E1", adjustment=adj.adjustment_id)
    # The approver cannot change the cut: told what to do instead.
    assert refused.value.field == "adjustment_id"
    assert refused.value.allowed == "reject this adjustment; a new one may cut at most 599.99 CNY"
    assert books.scalar(select(BudgetLine.amount_fen).where(BudgetLine.code == "A-1")) == 100_000
    status = books.scalar(select(BudgetAdjustment.status))
    assert status != LineStatus.approved


def test_an_overspent_line_may_still_be_raised(books):
    books.set_year("100000000.00")
    books.line("A-1", "1000.00")
    _pay(books, "A-1", "1500.00", "V1")
    books.adjust("A-1", "100.00")  # still short of what was paid, but nearer
    assert books.scalar(select(BudgetLine.amount_fen).where(BudgetLine.code == "A-1")) == 110_000


@pytest.mark.parametrize(("days_before", "allowed"), [(0, True), (1, False)])
def test_a_reserve_draw_is_not_dated_before_its_emergency_opened(books, days_before, allowed):
    """The audit reports a draw dated before its emergency as critical; the draw itself is
    refused instead. The opening day counts in local time (Asia/Shanghai)."""
    books.set_year("1000000.00")
    opened = books.clock.now()
    emergency = add_emergency(books, opened=opened)
    day = books.ctx.today() - dt.timedelta(days=days_before)
    form = ReserveDrawForm(
        fiscal_year=YEAR,
        emergency=str(emergency),
        entry_date=day,
        amount=Decimal("10.00"),
        payee="Pumps Ltd",
        description="pumps",
        voucher="R-1",
        approver="E1",
    )
    if allowed:
        with books.tx() as s:
            service.draw_reserve(s, books.ctx, form, actor="E1")
        assert books.scalar(select(func.count(LedgerEntry.id))) == 1
        return
    with (
        pytest.raises(DomainError, match="before the emergency opened") as refused,
        books.tx() as s,
    ):
        service.draw_reserve(s, books.ctx, form, actor="E1")
    assert refused.value.field == "entry_date"
    assert refused.value.allowed == f"on or after {books.ctx.today().isoformat()}"
    assert books.scalar(select(func.count(LedgerEntry.id))) == 0
