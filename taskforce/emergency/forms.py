"""Inputs and results of the emergency service, as pydantic models.

The same models are the operator's forms in the Prefect UI (titles,
descriptions, enums, bounds) and the gateway's request bodies, so a field is
named and bounded once.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taskforce.authority import Approver
from taskforce.budget.forms import ApprovingMember
from taskforce.emergency.models import Level
from taskforce.money import PositiveYuan
from taskforce.policy.schema import Classification
from taskforce.text import Text, as_one_line, as_text, has_visible

WorkingGroupCode = Annotated[
    str,
    Field(
        pattern=r"^wg:[a-z0-9-]+$",
        max_length=64,
        title="Working group 专项工作组",
        description="Code of a working group from config/org.yaml, e.g. wg:data.",
    ),
]
DedupKey = Annotated[str, Field(min_length=1, max_length=200)]


def nul_path(value: Any, path: str = "") -> str | None:
    """The path of the first string (key or value) holding a NUL character, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return here
            if (found := nul_path(item, here)) is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            if (found := nul_path(item, f"{path}.{i}" if path else str(i))) is not None:
                return found
    return None


class Form(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EmergencyIntake(Form):
    """应急事项 — what is known when an emergency is opened."""

    level: Level = Field(
        ...,
        title="Level 级别",
        description="I 重大危机 (leadership leads), II 较大问题 (executive), III 一般事项 (working group).",
    )
    title: str = Field(..., title="Title 标题", min_length=2, max_length=300)
    description: str = Field("", title="Description 描述", max_length=20_000)
    working_group: WorkingGroupCode | None = Field(
        None,
        title="Working group 专项工作组",
        description=(
            "The working group concerned; level III needs one, which it leads (a webhook "
            "without it takes its source's default_working_group, config/taskforce.yaml)."
        ),
    )
    classification: Classification = Field(Classification.internal, title="Classification 密级")
    details: dict[str, Any] = Field(
        default_factory=dict,
        title="Details",
        description="Free-form context from the source (labels, links); kept with the emergency.",
    )

    # Text arriving from a monitoring system (and typed in the form, which is the same model)
    # is cleaned, not refused: an alert must open an emergency. An operator trial paged a
    # title with a right-to-left override and a BEL (`emergency list` rang the terminal and
    # read backwards) and broke a page title over two lines. Cleaned before the length
    # bounds, so a stored title meets them when read again (a property test: "0\x1c" was
    # stored as "0", which its own form then refused). NUL stays refused (below).
    @field_validator("title", mode="before")
    @classmethod
    def _one_line(cls, v: Any) -> Any:
        return as_one_line(v) if isinstance(v, str) and "\x00" not in v else v

    @field_validator("title")
    @classmethod
    def _visible(cls, v: str) -> str:
        if "\x00" not in v and not has_visible(v):
            raise ValueError("must not be empty (it has no visible character)")
        return v

    @field_validator("description", mode="before")
    @classmethod
    def _without_controls(cls, v: Any) -> Any:
        return as_text(v) if isinstance(v, str) and "\x00" not in v else v

    @model_validator(mode="after")
    def _no_nul(self) -> EmergencyIntake:
        # No database text column (PostgreSQL) can hold a NUL character.
        if (where := nul_path(self.model_dump(mode="json"))) is not None:
            raise ValueError(f"{where}: text must not contain NUL (\\u0000)")
        return self


class OpenResult(BaseModel):
    emergency_id: str = Field(..., description="The emergency's public id (a UUID).")
    created: bool = Field(..., description="False when the request repeated an open emergency.")
    status: str
    level: Level
    is_drill: bool = False
    raised_from: Level | None = Field(
        None, description="The level before this delivery raised it; None when it did not."
    )
    # Trail entries whose messages go out at once, not with the next delivery run: a raise's
    # page and escalation notice (a level-I crisis must not wait a minute for its pages).
    # A tuple default, not a default_factory: the gateway's batch path builds results with
    # model_construct, which took 74 µs per result with a factory (2.5 µs without) and cut
    # the intake's throughput by a third (benchmarks/RESULTS.md, session 12).
    send_now: tuple[int, ...] = Field((), exclude=True)


class ReserveDrawForm(Form):
    """应急预留动用 — draw on the emergency reserve (SPEC §4: only an emergency may)."""

    amount: PositiveYuan = Field(..., title="Amount (CNY) 金额")
    # Only the groups the authority table lets approve money are offered (an expert
    # or the compliance officer was, and was refused by the run).
    approved_by: Approver = Field(
        Approver.executive,
        title="Approved by 审批机构",
        description="The group approving the draw; it must hold the authority for the amount "
        "(executive up to the configured maximum, leadership above).",
    )
    approver: ApprovingMember
    cross_department: bool = Field(
        False, title="Cross-department 跨部门", description="A cross-department allocation."
    )
    payee: Text = Field("", title="Payee 收款方", max_length=200)
    description: Text = Field("", title="Purpose 用途", max_length=2_000)
