"""The operator's budget inputs, as pydantic models.

Prefect renders them as the forms of the UI; the services validate them again
(a form may lose its constraints on the way). Money is Decimal yuan with at most
two decimals here and integer fen in the database (taskforce.money.to_fen).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from taskforce.authority import Approver
from taskforce.money import PositiveYuan, SignedYuan
from taskforce.policy.schema import Classification
from taskforce.text import OneLine, Text

UnitCode = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]
LineCode = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", min_length=2, max_length=64)
]
MemberCode = Annotated[str, Field(min_length=1, max_length=64)]
FiscalYearNumber = Annotated[int, Field(ge=2000, le=2100)]
WEEK_PATTERN = r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$"
HALF_PATTERN = r"^\d{4}-H[12]$"


class Form(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SetFiscalYearForm(Form):
    """年度预算 — set (or reset) the annual budget; the emergency reserve is held back from it."""

    year: FiscalYearNumber = Field(..., title="Fiscal year 预算年度")
    total: PositiveYuan = Field(
        ...,
        title="Annual budget (CNY) 年度预算",
        description="The whole year's budget in yuan; emergency_reserve_share of it is held "
        "as the emergency reserve (应急预留), drawable only by an emergency.",
    )
    decided_by: MemberCode = Field(
        ...,
        title="Decided by 决定人",
        description="The leadership member recording the leadership group's decision: the "
        "annual budget and its adjustment are the leadership group's (SPEC §1).",
    )


class ScheduledDisbursement(Form):
    due_date: dt.date = Field(..., title="Due date 计划支付日期")
    amount: PositiveYuan = Field(..., title="Amount (CNY) 计划金额")


class ProposeLineForm(Form):
    """零基预算 — propose a budget line: what it is for and what it must achieve."""

    code: LineCode = Field(
        ..., title="Line code 预算行编号", description="Unique code, e.g. 2026-APPR-001."
    )
    fiscal_year: FiscalYearNumber = Field(..., title="Fiscal year 预算年度")
    issue_number: str | None = Field(
        None,
        title="Issue 关联问题",
        description="Number of the issue this line pays for (TF-YYYY-NNNNN). "
        "An issue or an action item is required: no line without a purpose.",
        pattern=r"^TF-\d{4}-\d{5}$",
    )
    action_item_id: int | None = Field(
        None, title="Action item 关联行动项", ge=1, description="Id of the action item it pays for."
    )
    purpose: Text = Field(..., title="Purpose 用途", min_length=2, max_length=2000)
    output_target: Text = Field(
        ...,
        title="Output target 产出目标",
        min_length=2,
        max_length=2000,
        description="What the money produces, measurably (e.g. 'one-window system live in 12 districts').",
    )
    benefit_target: Text = Field(
        ...,
        title="Benefit target 效益目标",
        min_length=2,
        max_length=2000,
        description="What the output achieves (e.g. 'approval time down 30 %').",
    )
    amount: PositiveYuan = Field(..., title="Amount (CNY) 金额")
    cross_department: bool = Field(
        False,
        title="Cross-department allocation 跨部门调配",
        description="Cross-department allocations of 10,000,000 CNY or more are the leadership group's.",
    )
    owner_unit: UnitCode | None = Field(None, title="Owner unit 责任单位")
    classification: Classification = Field(Classification.internal, title="Classification 密级")
    schedule: list[ScheduledDisbursement] = Field(
        default_factory=list,
        title="Disbursement schedule 支付计划",
        description="Planned payments; their sum must not exceed the amount.",
        max_length=120,
    )

    @model_validator(mode="after")
    def _purpose_and_schedule(self) -> ProposeLineForm:
        if self.issue_number is None and self.action_item_id is None:
            raise ValueError(
                "issue_number or action_item_id is required: a zero-based line belongs to an "
                "issue or an action item"
            )
        planned = sum((s.amount for s in self.schedule), Decimal(0))
        if planned > self.amount:
            raise ValueError(
                f"the schedule plans {planned} CNY, more than the amount {self.amount}"
            )
        return self


class ProposeAdjustmentForm(Form):
    """预算调整 — change an approved line's amount; follows the same three reviews."""

    line_code: LineCode = Field(..., title="Line code 预算行编号")
    delta: SignedYuan = Field(
        ...,
        title="Change (CNY) 调整金额",
        description="Positive to increase the line, negative to reduce it; not zero.",
    )
    reason: Text = Field(..., title="Reason 调整理由", min_length=2, max_length=2000)

    @model_validator(mode="after")
    def _not_zero(self) -> ProposeAdjustmentForm:
        if self.delta == 0:
            raise ValueError("delta must not be zero")
        return self


class SubjectKind(StrEnum):
    line = "line"
    adjustment = "adjustment"


class ReviewForm(Form):
    """三审 — one review of a line or an adjustment, in order: compliance → evaluator → approval."""

    subject: SubjectKind = Field(SubjectKind.line, title="Reviewing 审查对象")
    line_code: LineCode | None = Field(None, title="Line code 预算行编号")
    adjustment_id: int | None = Field(None, title="Adjustment id 调整单号", ge=1)
    reviewer: MemberCode = Field(
        ...,
        title="Reviewer 审查人",
        description="Member code (config/org.yaml). Their group decides which review this is.",
    )
    approved: bool = Field(..., title="Approve 通过")
    comment: Text = Field("", title="Comment 意见", max_length=4000)

    @model_validator(mode="after")
    def _subject(self) -> ReviewForm:
        if self.subject == SubjectKind.line and not self.line_code:
            raise ValueError("line_code is required when reviewing a line")
        if self.subject == SubjectKind.adjustment and not self.adjustment_id:
            raise ValueError("adjustment_id is required when reviewing an adjustment")
        return self


class DisbursementForm(Form):
    """台账录入 — one disbursement entered by hand."""

    line_code: LineCode = Field(..., title="Line code 预算行编号")
    entry_date: dt.date = Field(..., title="Date 支付日期")
    amount: PositiveYuan = Field(..., title="Amount (CNY) 金额")
    payee: Text = Field("", title="Payee 收款人", max_length=200)
    description: Text = Field("", title="Description 摘要", max_length=2000)
    voucher: OneLine = Field(
        ...,
        title="Voucher number 凭证号",
        min_length=1,
        max_length=150,
        description="The finance voucher number; entering it twice records it once.",
    )


# Who approved a reserve draw; checked in taskforce/budget/reserve.py (approving_member).
ApprovingMember = Annotated[
    str,
    Field(
        title="Approver 审批人",
        min_length=1,
        max_length=64,
        description="The member of the approving group who approved the draw: a member code "
        "of config/org.yaml (e.g. E1 for the executive group, L1 for the leadership group), "
        "cleared for the emergency.",
    ),
]


class ReserveDrawForm(Form):
    """动用应急预留 — draw on the emergency reserve for an open emergency."""

    fiscal_year: FiscalYearNumber = Field(..., title="Fiscal year 预算年度")
    emergency: str = Field(
        ...,
        title="Emergency 应急事件",
        min_length=1,
        max_length=64,
        description="The emergency's id as its pages show it (its first 8 characters or "
        "more are enough when no other emergency's id begins with them); it must be open "
        "(not resolved or closed).",
    )
    entry_date: dt.date = Field(..., title="Date 支付日期")
    amount: PositiveYuan = Field(..., title="Amount (CNY) 金额")
    payee: Text = Field("", title="Payee 收款人", max_length=200)
    description: Text = Field(..., title="Description 摘要", min_length=2, max_length=2000)
    voucher: OneLine = Field(..., title="Voucher number 凭证号", min_length=1, max_length=150)
    # Only the groups the authority table lets approve money are offered (an expert
    # or the compliance officer was, and was refused by the run).
    approved_by: Approver = Field(
        Approver.executive,
        title="Approved by 审批机构",
        description="The group approving the draw; it must hold the authority for the amount.",
    )
    approver: ApprovingMember
    cross_department: bool = Field(False, title="Cross-department 跨部门")


class AuditWeekForm(Form):
    week: str | None = Field(
        None,
        title="ISO week 审计周",
        description="The week to audit, e.g. 2026-W48. Empty: the last complete week.",
        pattern=WEEK_PATTERN,
    )


class PerformanceHalfForm(Form):
    half: str | None = Field(
        None,
        title="Half-year 半年度",
        description="The half-year to audit, e.g. 2026-H1. Empty: the last complete half-year.",
        pattern=HALF_PATTERN,
    )
