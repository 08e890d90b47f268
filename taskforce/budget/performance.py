"""The semi-annual performance audit (绩效审计) for the third-party evaluator.

Input against output per budget line: what was budgeted and spent, what the
line promised (output and benefit targets) and what its issue achieved (the
latest evaluation: outcome and satisfaction) and how far its action item got.
Set-based like the weekly audit: five queries, whatever the ledger's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.budget.models import BudgetLine, DisbursementSchedule, LedgerEntry, LineStatus
from taskforce.budget.periods import Period, half_year, started, within_recorded_years
from taskforce.context import Context
from taskforce.loop.models import Evaluation, Issue, TaskNode
from taskforce.org.models import Unit
from taskforce.policy.schema import Classification

COLUMNS = [
    "code",
    "status",
    "owner",
    "classification",
    "purpose",
    "output_target",
    "benefit_target",
    "amount_fen",
    "spent_in_half_fen",
    "spent_to_date_fen",
    "scheduled_to_date_fen",
    "execution_bp",  # spent to date / amount, in basis points (exact integers)
    "issue",
    "issue_classification",  # its title and action item are read at it (report._redact_lines)
    "issue_title",
    "issue_stage",
    "outcome",
    "satisfaction",
    "action_item",
    "action_progress",
    "approved_by_end",  # approved by the half's last day: in the base execution is measured on
    "assessment",
]


@dataclass
class PerformanceResult:
    half: str
    period: Period
    lines: pd.DataFrame  # COLUMNS
    summary: dict[str, Any]


# What a line's assessment may read (the reports translate it: assessment.<text>).
ASSESSMENTS = (
    "not approved",
    "approved after the period",
    "over budget",
    "target met",
    "solved, satisfaction below target",
    "target not met (partly)",
    "target not met (unsolved)",
    "not started",
    "in progress",
)


def _basis_points(part: int, whole: int) -> int:
    """part / whole in basis points, rounded half up as the reviews round (51.815 % is
    51.82 %, not 51.81 %: an operator trial compared the two); 0 of nothing."""
    return (part * 20_000 + whole) // (2 * whole) if whole else 0


def _assess(row: dict[str, Any], satisfaction_target: int) -> str:
    # Outside the base first: listed, said so, not assessed as if budgeted in the half (an
    # operator trial: lines approved in July read "not started" in H1's report).
    if row["status"] != LineStatus.approved.value:
        return "not approved"
    if not row["approved_by_end"]:
        return "approved after the period"
    if row["amount_fen"] and row["spent_to_date_fen"] > row["amount_fen"]:
        return "over budget"
    if row["outcome"] == "solved":
        # Solved is the outcome; the target is met when the public is satisfied too (an
        # operator trial: "target met" at satisfaction 65 against kpi_targets.satisfaction 90).
        if row["satisfaction"] is not None and row["satisfaction"] < satisfaction_target:
            return "solved, satisfaction below target"
        return "target met"
    if row["outcome"] in ("partly", "unsolved"):
        return f"target not met ({row['outcome']})"
    if row["spent_to_date_fen"] == 0:
        return "not started"
    return "in progress"


def run_performance_audit(
    session: Session, ctx: Context, half: str, *, actor: str = "budget-performance-audit"
) -> PerformanceResult:
    period = within_recorded_years(session, started(half_year(half), ctx.today(), "half"), "half")
    year = period.start.year
    cutoff = ctx.end_of(period.end)
    lines = session.execute(
        select(
            BudgetLine.id,
            BudgetLine.code,
            BudgetLine.status,
            Unit.code,
            BudgetLine.classification,
            BudgetLine.purpose,
            BudgetLine.output_target,
            BudgetLine.benefit_target,
            BudgetLine.amount_fen,
            BudgetLine.issue_id,
            Issue.number,
            Issue.title,
            Issue.stage,
            TaskNode.title,
            TaskNode.progress_percent,
            Issue.classification,
            (BudgetLine.approved_at <= cutoff).label("approved_by_end"),
        )
        .outerjoin(Unit, Unit.id == BudgetLine.owner_unit_id)
        .outerjoin(Issue, Issue.id == BudgetLine.issue_id)
        .outerjoin(TaskNode, TaskNode.id == BudgetLine.task_id)
        .where(BudgetLine.fiscal_year == year, BudgetLine.is_reserve.is_(False))
        .order_by(BudgetLine.code)
    ).all()
    in_half = (LedgerEntry.entry_date >= period.start) & (LedgerEntry.entry_date <= period.end)
    spending = {
        line_id: (int(half_fen or 0), int(total_fen or 0))
        for line_id, half_fen, total_fen in session.execute(
            select(
                LedgerEntry.line_id,
                func.sum(case((in_half, LedgerEntry.amount_fen), else_=0)),
                func.sum(LedgerEntry.amount_fen),
            )
            .where(LedgerEntry.fiscal_year == year, LedgerEntry.entry_date <= period.end)
            .group_by(LedgerEntry.line_id)
        )
    }
    scheduled = dict(
        session.execute(
            select(DisbursementSchedule.line_id, func.sum(DisbursementSchedule.amount_fen))
            .join(BudgetLine, BudgetLine.id == DisbursementSchedule.line_id)
            .where(BudgetLine.fiscal_year == year, DisbursementSchedule.due_date <= period.end)
            .group_by(DisbursementSchedule.line_id)
        ).all()
    )
    issue_ids = select(BudgetLine.issue_id).where(BudgetLine.fiscal_year == year).scalar_subquery()
    latest: dict[int, tuple[int, str, int]] = {}
    for issue_id, round_, outcome, satisfaction in session.execute(
        select(
            Evaluation.issue_id, Evaluation.round, Evaluation.outcome, Evaluation.satisfaction
        ).where(Evaluation.issue_id.in_(issue_ids), Evaluation.evaluated_at <= cutoff)
    ):
        if issue_id not in latest or round_ > latest[issue_id][0]:
            latest[issue_id] = (round_, str(getattr(outcome, "value", outcome)), int(satisfaction))
    rows = []
    for r in lines:
        half_fen, total_fen = spending.get(r[0], (0, 0))
        evaluation = latest.get(r[9])
        row = {
            "code": r[1],
            "status": LineStatus(r[2]).value,
            "owner": r[3] or "executive",
            "classification": Classification(r[4]).value,
            "purpose": r[5],
            "output_target": r[6],
            "benefit_target": r[7],
            "amount_fen": int(r[8]),
            "spent_in_half_fen": half_fen,
            "spent_to_date_fen": total_fen,
            "scheduled_to_date_fen": int(scheduled.get(r[0], 0) or 0),
            "execution_bp": _basis_points(total_fen, int(r[8])),
            "issue": r[10] or "",
            "issue_classification": Classification(r[15]).value if r[15] else "",
            "issue_title": r[11] or "",
            "issue_stage": str(getattr(r[12], "value", r[12]) or ""),
            "outcome": evaluation[1] if evaluation else "",
            "satisfaction": evaluation[2] if evaluation else None,
            "action_item": r[13] or "",
            "action_progress": r[14],
            "approved_by_end": bool(r[16]) and LineStatus(r[2]) == LineStatus.approved,
        }
        row["assessment"] = _assess(row, ctx.policy.kpi_targets.satisfaction)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    # Budgeted means approved by the half's end: a proposed, in-review or rejected line, or
    # one approved since, is listed but is not part of the base execution is measured on
    # (an operator trial: H1 audited in November measured H1's spending on November's
    # lines, 4.23 % where the semi-annual review said 11.0 %).
    approved = frame["approved_by_end"].astype(bool)
    amount = int(frame.loc[approved, "amount_fen"].sum()) if not frame.empty else 0
    spent = int(frame["spent_to_date_fen"].sum()) if not frame.empty else 0
    summary = {
        "half": half,
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "lines": len(frame),
        "amount_fen": amount,
        "spent_in_half_fen": int(frame["spent_in_half_fen"].sum()) if not frame.empty else 0,
        "spent_to_date_fen": spent,
        "execution_bp": _basis_points(spent, amount),
        "by_assessment": frame["assessment"].value_counts().to_dict() if not frame.empty else {},
        # A half still running is audited to date (as the weekly audit's week): the reports
        # say so (an operator trial: 2026-H2 audited in November read as the whole half).
        "in_progress": ctx.today() <= period.end,
        "as_of": min(ctx.today(), period.end).isoformat(),
    }
    events.record(
        session,
        ctx.policy,
        at=ctx.now(),
        actor=actor,
        action="budget.performance_audit",
        subject_type="performance_audit",
        subject_id=half,
        payload={
            k: summary[k]
            for k in ("half", "lines", "amount_fen", "spent_to_date_fen", "execution_bp")
        },
        notify="performance_audit_published",
        context={"half": half, "lines": len(frame)},
    )
    return PerformanceResult(half, period, frame, summary)
