"""The operator's inputs for each step of the loop, as pydantic models.

Prefect renders these as the forms of the UI (titles, descriptions, enums,
bounds), and the services validate them again, because Prefect's
`RunInput.with_initial_data` drops a field's constraints from the form.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from taskforce.policy.schema import Classification

UnitCode = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]
Yuan = Annotated[Decimal, Field(ge=0, max_digits=15, decimal_places=2)]


class Form(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReportIssueForm(Form):
    """问题上报 — report an issue to the executive group."""

    title: str = Field(
        ...,
        title="Title 标题",
        min_length=2,
        max_length=300,
        description="One line naming the problem.",
    )
    description: str = Field("", title="Description 问题描述", max_length=20_000)
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
    category: str = Field("general", title="Category 类别", min_length=1, max_length=64)
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
