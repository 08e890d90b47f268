from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from taskforce.columns import classification_column, enum_column
from taskforce.db import Base
from taskforce.policy.schema import Classification


class LineStatus(StrEnum):
    proposed = "proposed"
    in_review = "in_review"
    approved = "approved"
    rejected = "rejected"


class ReviewStage(StrEnum):
    compliance = "compliance"  # 合规专员 first review
    evaluator = "evaluator"  # 第三方 second review
    leadership = "leadership"  # 领导小组
    executive = "executive"  # within the executive group's authority


class LedgerKind(StrEnum):
    disbursement = "disbursement"
    reserve_draw = "reserve_draw"  # only an emergency may draw on the reserve


class Severity(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class FiscalYear(Base):
    __tablename__ = "fiscal_year"
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    reserve_fen: Mapped[int] = mapped_column(BigInteger)  # the share in force when the year was set


class BudgetLine(Base):
    """Zero-based: every line belongs to an issue or a task and states what it buys."""

    __tablename__ = "budget_line"
    __table_args__ = (
        CheckConstraint(
            "issue_id IS NOT NULL OR task_id IS NOT NULL OR is_reserve", name="has_purpose"
        ),
        CheckConstraint("amount_fen >= 0", name="amount_not_negative"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    fiscal_year: Mapped[int] = mapped_column(ForeignKey("fiscal_year.year"), index=True)
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issue.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("task_node.id"))
    is_reserve: Mapped[bool] = mapped_column(Boolean, default=False)
    purpose: Mapped[str] = mapped_column(Text)
    output_target: Mapped[str] = mapped_column(Text)  # 产出目标
    benefit_target: Mapped[str] = mapped_column(Text)  # 效益目标
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    cross_department: Mapped[bool] = mapped_column(Boolean, default=False)
    owner_unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"))
    status: Mapped[LineStatus] = enum_column(LineStatus, default=LineStatus.proposed)
    approved_by: Mapped[str | None] = mapped_column(
        String(32)
    )  # group kind that gave final approval
    approved_at: Mapped[dt.datetime | None]
    classification: Mapped[Classification] = classification_column()
    created_at: Mapped[dt.datetime]


class BudgetAdjustment(Base):
    __tablename__ = "budget_adjustment"
    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("budget_line.id"), index=True)
    delta_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[LineStatus] = enum_column(LineStatus, default=LineStatus.proposed)
    approved_by: Mapped[str | None] = mapped_column(String(32))
    requested_at: Mapped[dt.datetime]
    decided_at: Mapped[dt.datetime | None]


class BudgetReview(Base):
    """One of the three reviews (三审), or the executive's approval, of a line or adjustment."""

    __tablename__ = "budget_review"
    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int | None] = mapped_column(ForeignKey("budget_line.id"), index=True)
    adjustment_id: Mapped[int | None] = mapped_column(
        ForeignKey("budget_adjustment.id"), index=True
    )
    stage: Mapped[ReviewStage] = enum_column(ReviewStage)
    reviewer_member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    reviewer_group: Mapped[str] = mapped_column(String(32))
    approved: Mapped[bool] = mapped_column(Boolean)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[dt.datetime]


class DisbursementSchedule(Base):
    """Planned disbursements of a line, to find spending behind schedule."""

    __tablename__ = "disbursement_schedule"
    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("budget_line.id"), index=True)
    due_date: Mapped[dt.date] = mapped_column(Date)
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class LedgerEntry(Base):
    __tablename__ = "ledger_entry"
    id: Mapped[int] = mapped_column(primary_key=True)
    fiscal_year: Mapped[int] = mapped_column(Integer, index=True)
    line_id: Mapped[int | None] = mapped_column(ForeignKey("budget_line.id"), index=True)
    kind: Mapped[LedgerKind] = enum_column(LedgerKind, default=LedgerKind.disbursement)
    emergency_id: Mapped[int | None] = mapped_column(ForeignKey("emergency.id"))
    entry_date: Mapped[dt.date] = mapped_column(Date, index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    payee: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    external_ref: Mapped[str | None] = mapped_column(String(200), unique=True)  # import idempotency
    created_at: Mapped[dt.datetime]


class AuditFinding(Base):
    """A compliance-audit finding with a stable identity: re-runs update, never duplicate."""

    __tablename__ = "audit_finding"
    id: Mapped[int] = mapped_column(primary_key=True)
    finding_key: Mapped[str] = mapped_column(String(200), unique=True)
    check_name: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[Severity] = enum_column(Severity)
    owner: Mapped[str] = mapped_column(String(64))  # group or unit code
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict] = mapped_column(default=dict)
    first_seen_week: Mapped[str] = mapped_column(String(10))  # ISO week, 2026-W48
    last_seen_week: Mapped[str] = mapped_column(String(10))
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    resolved_week: Mapped[str | None] = mapped_column(String(10))
