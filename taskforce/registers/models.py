from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from taskforce.columns import classification_column, enum_column
from taskforce.db import Base
from taskforce.policy.schema import Classification


class RiskCategory(StrEnum):
    policy = "policy"
    market = "market"
    technology = "technology"
    management = "management"


class RiskStrategy(StrEnum):
    prevent = "prevent"
    mitigate = "mitigate"
    transfer = "transfer"
    accept = "accept"


class MilestoneKind(StrEnum):
    organisational = "organisational"
    progress = "progress"
    outcome = "outcome"
    benefit = "benefit"
    risk = "risk"


class Risk(Base):
    __tablename__ = "risk"
    __table_args__ = (
        # The top is the policy's matrix size (risk.matrix_size), checked by the service.
        CheckConstraint("probability >= 1", name="probability_range"),
        CheckConstraint("impact >= 1", name="impact_range"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    category: Mapped[RiskCategory] = enum_column(RiskCategory)
    probability: Mapped[int] = mapped_column(Integer)
    impact: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[RiskStrategy] = enum_column(RiskStrategy)
    owner_unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"))
    plan: Mapped[str] = mapped_column(Text, default="")
    classification: Mapped[Classification] = classification_column()
    reviewed_at: Mapped[dt.datetime]
    # The highest warning standing: lowered with the score, its warnings above then settled.
    warned_colour: Mapped[str | None] = mapped_column(String(16))


class Milestone(Base):
    __tablename__ = "milestone"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    kind: Mapped[MilestoneKind] = enum_column(MilestoneKind)
    due_date: Mapped[dt.date] = mapped_column(Date)
    target: Mapped[str] = mapped_column(Text)
    achieved: Mapped[bool] = mapped_column(Boolean, default=False)
    achieved_on: Mapped[dt.date | None] = mapped_column(Date)
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issue.id"))
    classification: Mapped[Classification] = classification_column()


class Review(Base):
    """A generated PDCA review; re-running a period replaces it."""

    __tablename__ = "review"
    __table_args__ = (UniqueConstraint("kind", "period"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(
        String(32)
    )  # weekly / monthly / quarterly / semiannual / budget_audit
    period: Mapped[str] = mapped_column(String(16))  # 2026-W48, 2026-11, 2026-Q4, 2026-H2
    generated_at: Mapped[dt.datetime]
    files: Mapped[dict] = mapped_column(default=dict)
    kpis: Mapped[dict] = mapped_column(default=dict)


class CaseLesson(Base):
    """The case library (案例库): lessons from evaluations and reviews."""

    __tablename__ = "case_lesson"
    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issue.id"))
    source: Mapped[str] = mapped_column(String(64))  # evaluation:<id> / review:<kind>:<period>
    title: Mapped[str] = mapped_column(String(300))
    lesson: Mapped[str] = mapped_column(Text)
    classification: Mapped[Classification] = classification_column()
    created_at: Mapped[dt.datetime]
