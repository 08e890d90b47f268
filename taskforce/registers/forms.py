"""UI forms that maintain the risk register (SPEC §6) and the milestones (SPEC §3, §5.3)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from taskforce.policy.schema import MAX_MATRIX_SIZE, Classification
from taskforce.registers.models import MilestoneKind, RiskCategory, RiskStrategy
from taskforce.text import OneLine, Text

Code = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9-]{1,31}$", max_length=32)]
UnitCode = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]


class Form(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RiskForm(Form):
    """风险登记 — add a risk to the register, or update it (same code)."""

    code: Code = Field(..., title="Code 编号", description="Stable code, e.g. R-POL-01.")
    title: OneLine = Field(..., title="Risk 风险", min_length=2, max_length=300)
    category: RiskCategory = Field(
        ...,
        title="Category 类别",
        description="policy 政策 / market 市场 / technology 技术 / management 管理",
    )
    # 1 to risk.matrix_size (5 by default; checked against the policy in force), bounded
    # here by the largest matrix config allows.
    probability: int = Field(
        ...,
        title="Probability 可能性",
        description="1 (rare) to the risk matrix's size (config risk.matrix_size, 5 by default).",
        ge=1,
        le=MAX_MATRIX_SIZE,
    )
    impact: int = Field(
        ...,
        title="Impact 影响",
        description="1 (minor) to the risk matrix's size (config risk.matrix_size, 5 by default).",
        ge=1,
        le=MAX_MATRIX_SIZE,
    )
    strategy: RiskStrategy = Field(
        ...,
        title="Strategy 应对策略",
        description="prevent 规避 / mitigate 减轻 / transfer 转移 / accept 接受",
    )
    owner_unit: UnitCode = Field(
        ..., title="Owner unit 责任单位", description="A unit code of config/org.yaml."
    )
    plan: Text = Field("", title="Response plan 应对预案", max_length=20_000)
    classification: Classification = Field(Classification.internal, title="Classification 密级")


class MilestoneForm(Form):
    """里程碑 — add a milestone, or update it (same code)."""

    code: Code = Field(..., title="Code 编号", description="Stable code, e.g. M-ORG-01.")
    title: OneLine = Field(..., title="Milestone 里程碑", min_length=2, max_length=300)
    kind: MilestoneKind = Field(
        ...,
        title="Kind 类型",
        description="organisational 组织 / progress 进度 / outcome 成果 / benefit 效益 / risk 风险",
    )
    due_date: dt.date = Field(..., title="Due date 到期日")
    target: Text = Field(..., title="Measurable target 可衡量目标", min_length=2, max_length=5_000)
    achieved: bool = Field(False, title="Achieved 已达成")
    achieved_on: dt.date | None = Field(None, title="Achieved on 达成日期")
    issue: str | None = Field(
        None,
        title="Issue 关联问题",
        description="Issue number, e.g. TF-2026-00012.",
        pattern=r"^TF-\d{4}-\d{5}$",
    )
    classification: Classification = Field(Classification.internal, title="Classification 密级")

    @model_validator(mode="after")
    def _achieved_date(self) -> MilestoneForm:
        if self.achieved_on is not None and not self.achieved:
            raise ValueError("achieved_on: given but achieved is false (allowed: leave it empty)")
        return self


class RiskResult(BaseModel):
    code: str
    created: bool
    changed: bool
    score: int
    colour: str | None  # the warning level the score reaches, if any
    warning_raised: str | None  # colour of the warning raised by this change, if any
    # Ids of the risk's warnings this change settled (its score fell below their threshold).
    warnings_settled: list[int] = []


class MilestoneResult(BaseModel):
    code: str
    created: bool
    changed: bool
    colour: str
