"""The operator's inputs for each step of the loop, as pydantic models.

Prefect renders these as the forms of the UI (titles, descriptions, enums,
bounds), and the services validate them again, because Prefect's
`RunInput.with_initial_data` drops a field's constraints from the form.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taskforce.loop.models import Ballot, Outcome
from taskforce.money import Yuan
from taskforce.policy.schema import Classification
from taskforce.text import OneLine, Text

UnitCode = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]


class Form(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReportIssueForm(Form):
    """问题上报 — report an issue to the executive group."""

    title: OneLine = Field(
        ...,
        title="Title 标题",
        min_length=2,
        max_length=300,
        description="One line naming the problem.",
    )
    description: Text = Field("", title="Description 问题描述", max_length=20_000)
    reporting_unit: UnitCode = Field(
        ...,
        title="Reporting unit 上报单位",
        description="Code of the unit reporting (see config/org.yaml), e.g. market-reg.",
    )
    received_by: UnitCode | None = Field(
        None,
        title="First receiver 首接单位",
        description="The unit that first received the report becomes its lead unit (首接负责制). "
        "Defaults to the reporting unit.",
    )
    category: OneLine = Field("general", title="Category 类别", min_length=1, max_length=64)
    related_units: list[UnitCode] = Field(
        default_factory=list, title="Related units 相关单位", max_length=50
    )
    classification: Classification = Field(Classification.internal, title="Classification 密级")
    estimated_budget: Yuan = Field(Decimal("0"), title="Estimated budget (CNY) 预估经费")
    duplicate_of: str | None = Field(
        None,
        title="Duplicate of 重复问题编号",
        description="Number of an open issue this report repeats, if known.",
        pattern=r"^TF-\d{4}-\d{5}$",
    )

    @field_validator("title")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("title must not be empty")
        return v


class ReportResult(BaseModel):
    issue_id: int
    issue_number: str
    duplicate: bool
    lead_unit: str
    stage: str


class ResponsibleUnit(Form):
    unit: UnitCode = Field(..., title="Unit 责任单位")
    share_percent: int = Field(..., ge=1, le=100, title="Share % 责任比例")


class CoordinateForm(Form):
    """协调会商 — record the coordination meeting and its decision."""

    participants: list[UnitCode] = Field(
        ..., min_length=1, max_length=50, title="Participants 参会单位"
    )
    responsible: list[ResponsibleUnit] = Field(
        ...,
        min_length=1,
        max_length=20,
        title="Responsible units 责任分工",
        description="Shares must add up to 100.",
    )
    solution: Text = Field(..., min_length=2, max_length=20_000, title="Solution outline 解决方案")
    deadline: dt.date = Field(
        ..., title="Deadline 完成时限", description="The date the issue must be solved by."
    )
    budget: Yuan = Field(Decimal("0"), title="Budget (CNY) 经费")
    flagged_major: bool = Field(
        False,
        title="Major matter 重大事项",
        description="Flag as major (the executive director's call): goes to the leadership "
        "group. Give the director's member code under 'Flagged by'.",
    )
    flagged_by: str | None = Field(
        None,
        max_length=64,
        title="Flagged by 提出人 (member code)",
        description="Only with 'Major matter': the executive director's member code (SPEC "
        "§2.2: a matter within the executive's authority is major when the director says so).",
    )

    @field_validator("responsible")
    @classmethod
    def _shares(cls, v: list[ResponsibleUnit]) -> list[ResponsibleUnit]:
        if sum(r.share_percent for r in v) != 100:
            raise ValueError("shares must add up to 100")
        if len({r.unit for r in v}) != len(v):
            raise ValueError("each unit may appear once")
        return v


class ExpertOpinionInput(Form):
    expert: str = Field(..., title="Expert 专家 (member code)", max_length=64)
    supports: bool = Field(..., title="Supports 是否支持")
    opinion: Text = Field(..., min_length=2, max_length=5_000, title="Opinion 论证意见")


class LeadershipVoteForm(Form):
    """议题预审 → 专家论证 → 集体表决: record the leadership group's handling of a major matter."""

    pre_review_passed: bool = Field(..., title="Agenda pre-review passed 议题预审通过")
    pre_review_note: Text = Field("", max_length=5_000, title="Pre-review note 预审意见")
    expert_opinions: list[ExpertOpinionInput] = Field(
        default_factory=list, max_length=20, title="Expert review 专家论证"
    )
    ballots: dict[str, Ballot] = Field(
        default_factory=dict,
        title="Ballots 表决",
        description="Member code → yes / no / abstain. Absent members are left out; at least "
        "one ballot once the pre-review passed.",
    )

    @model_validator(mode="after")
    def _a_vote_has_ballots(self) -> LeadershipVoteForm:
        # An empty form (the UI's default) recorded "0 yes of 7" and sent the matter back
        # to coordination: a vote nobody cast is a form not filled in, not a vote lost.
        if self.pre_review_passed and not self.ballots:
            raise ValueError(
                "ballots: no ballot recorded; enter each voting member's yes / no / abstain "
                "(absent members are left out), or record a failed pre-review"
            )
        # 议题预审 → 专家论证 → 集体表决 (SPEC §2.2): a matter past its pre-review is voted on
        # only after the expert review.
        if self.pre_review_passed and not self.expert_opinions:
            raise ValueError(
                "expert_opinions: no expert review recorded; a major matter is voted on after "
                "the expert review (专家论证): enter at least one opinion of an expert-pool "
                "member, or record a failed pre-review"
            )
        return self


class ActionItemInput(Form):
    title: OneLine = Field(..., min_length=2, max_length=300, title="Action item 行动项")
    owner_unit: UnitCode = Field(..., title="Owner unit 责任单位")
    start_date: dt.date | None = Field(
        None,
        title="Start 开始日期",
        description="Defaults to the filing date; not before the issue was reported.",
    )
    due_date: dt.date = Field(
        ..., title="Due 到期日", description="No later than the issue deadline."
    )
    deliverable: Text = Field(
        ..., min_length=2, max_length=2_000, title="Deliverable standard 交付标准"
    )


class SubProjectInput(Form):
    title: OneLine = Field(..., min_length=2, max_length=300, title="Sub-project 子项目")
    action_items: list[ActionItemInput] = Field(
        ..., min_length=1, max_length=100, title="Action items 行动项"
    )


class PlanForm(Form):
    """方案制定 — the three-level task tree 总目标-子项目-行动项."""

    goal: OneLine = Field(..., min_length=2, max_length=300, title="Goal 总目标")
    sub_projects: list[SubProjectInput] = Field(
        ..., min_length=1, max_length=50, title="Sub-projects 子项目"
    )


class ProgressForm(Form):
    """执行反馈 — progress on one action item."""

    task_id: int = Field(..., ge=1, title="Action item id 行动项编号")
    percent: int = Field(..., ge=0, le=100, title="Progress % 完成进度")
    note: Text = Field(
        "",
        max_length=5_000,
        title="Note 进展说明",
        description="Why behind, if behind (偏差原因); required when the percent is lower than "
        "the last report (进度回退须说明原因).",
    )
    reported_by: OneLine = Field(
        ...,
        min_length=1,
        max_length=100,
        title="Reported by 报告人",
        description="The member code of who reports (config/org.yaml), e.g. W1.",
    )


class EvaluateForm(Form):
    """效果评估 — the executive group evaluates the effect."""

    outcome: Outcome = Field(..., title="Outcome 评估结论")
    satisfaction: int = Field(..., ge=0, le=100, title="Satisfaction 满意度 (0–100)")
    lessons: Text = Field("", max_length=20_000, title="Lessons 经验教训")


class StepResult(BaseModel):
    issue_number: str
    stage: str
    # The issue's: whether the Prefect UI (read at internal clearance) may show `detail`,
    # which names action items and reasons. None in a result remembered before it was kept.
    classification: Classification | None = None
    detail: dict = Field(default_factory=dict)
