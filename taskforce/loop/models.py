from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from taskforce.columns import classification_column, enum_column
from taskforce.db import Base
from taskforce.policy.schema import Classification


class Stage(StrEnum):
    reported = "reported"
    coordinating = "coordinating"
    planning = "planning"
    executing = "executing"
    evaluating = "evaluating"
    closed = "closed"


class Colour(StrEnum):
    green = "green"
    yellow = "yellow"
    red = "red"


class TaskLevel(StrEnum):
    goal = "goal"  # 总目标
    sub_project = "sub_project"  # 子项目
    action_item = "action_item"  # 行动项


class DecisionStatus(StrEnum):
    decided = "decided"  # executive decision within its authority
    pre_review = "pre_review"  # 议题预审
    expert_review = "expert_review"  # 专家论证
    voting = "voting"  # 集体表决
    passed = "passed"
    rejected = "rejected"


# A major matter's decision still with the leadership group: the issue waits for its vote.
PENDING_DECISION = (DecisionStatus.pre_review, DecisionStatus.expert_review, DecisionStatus.voting)


class Ballot(StrEnum):
    yes = "yes"
    no = "no"
    abstain = "abstain"


class Outcome(StrEnum):
    solved = "solved"
    partly = "partly"
    unsolved = "unsolved"


class Issue(Base):
    __tablename__ = "issue"
    # The sweep lists overdue stages: stage IN (...) AND stage_due_at < now, read from the index.
    __table_args__ = (Index("ix_issue_stage_due", "stage", "stage_due_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(64))
    classification: Mapped[Classification] = classification_column()
    reporting_unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"))
    # Indexed: every report looks for duplicates among the lead unit's open issues.
    lead_unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), index=True)  # 首接负责制
    estimated_budget_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    stage: Mapped[Stage] = enum_column(Stage, default=Stage.reported, index=True)
    stage_entered_at: Mapped[dt.datetime]
    stage_due_at: Mapped[dt.datetime | None]  # deadline of the current stage, if it has one
    reported_at: Mapped[dt.datetime]
    first_response_at: Mapped[dt.datetime | None]
    deadline: Mapped[dt.date | None] = mapped_column(Date)  # set at coordination
    closed_at: Mapped[dt.datetime | None]
    returns_count: Mapped[int] = mapped_column(Integer, default=0)  # evaluations sent back
    round: Mapped[int] = mapped_column(Integer, default=1)
    major: Mapped[bool] = mapped_column(Boolean, default=False)
    origin: Mapped[str] = mapped_column(
        String(32), default="report"
    )  # report / emergency / review / import
    origin_ref: Mapped[str | None] = mapped_column(String(100))

    reporting_unit = relationship("Unit", foreign_keys=[reporting_unit_id])
    lead_unit = relationship("Unit", foreign_keys=[lead_unit_id])


class IssueReport(Base):
    """Each report received; a duplicate is linked to the open issue it repeats."""

    __tablename__ = "issue_report"
    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[dt.datetime]
    duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    source_row: Mapped[str | None] = mapped_column(String(200))  # ledger import: file hash + row


class IssueUnit(Base):
    """Units related to or responsible for an issue, with their shares (协调会商)."""

    __tablename__ = "issue_unit"
    __table_args__ = (UniqueConstraint("issue_id", "unit_id", "round"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"))
    round: Mapped[int] = mapped_column(Integer, default=0)  # 0 = related at report time
    responsible: Mapped[bool] = mapped_column(Boolean, default=False)
    share_percent: Mapped[int] = mapped_column(Integer, default=0)


class Meeting(Base):
    __tablename__ = "meeting"
    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))  # coordination / leadership
    held_at: Mapped[dt.datetime]
    participants: Mapped[list] = mapped_column(default=list)  # unit codes
    solution: Mapped[str] = mapped_column(Text)
    deadline: Mapped[dt.date] = mapped_column(Date)
    budget_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    classification: Mapped[Classification] = classification_column()


class Decision(Base):
    __tablename__ = "decision"
    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id"), index=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meeting.id"))
    round: Mapped[int] = mapped_column(Integer)
    major: Mapped[bool] = mapped_column(Boolean, default=False)
    major_reasons: Mapped[list] = mapped_column(default=list)
    status: Mapped[DecisionStatus] = enum_column(DecisionStatus)
    opened_at: Mapped[dt.datetime]
    decided_at: Mapped[dt.datetime | None]
    summary: Mapped[str] = mapped_column(Text, default="")
    outcome_reasons: Mapped[str] = mapped_column(Text, default="")
    classification: Mapped[Classification] = classification_column()

    votes: Mapped[list[Vote]] = relationship(back_populates="decision")


class ExpertOpinion(Base):
    """专家论证: an expert's written opinion before the vote."""

    __tablename__ = "expert_opinion"
    id: Mapped[int] = mapped_column(primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decision.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    supports: Mapped[bool] = mapped_column(Boolean)
    opinion: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime]


class Vote(Base):
    __tablename__ = "vote"
    __table_args__ = (UniqueConstraint("decision_id", "member_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decision.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    ballot: Mapped[Ballot] = enum_column(Ballot)
    at: Mapped[dt.datetime]
    decision: Mapped[Decision] = relationship(back_populates="votes")


class Plan(Base):
    __tablename__ = "plan"
    __table_args__ = (UniqueConstraint("issue_id", "round"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    filed_at: Mapped[dt.datetime]
    due_date: Mapped[dt.date] = mapped_column(Date)  # plan.plan_due
    on_time: Mapped[bool] = mapped_column(Boolean)
    filed_with_leadership: Mapped[bool] = mapped_column(Boolean, default=True)  # 备案
    calendar_fallback: Mapped[bool] = mapped_column(Boolean, default=False)


class TaskNode(Base):
    """总目标 → 子项目 → 行动项. Only action items carry progress; their colour is derived
    from their dates, progress and today (taskforce/loop/colours.py), never stored."""

    __tablename__ = "task_node"
    __table_args__ = (
        # The incremental dispatch sweep reads only open action items whose next red-item step
        # has fallen due (or whose day is unknown, NULL): the range comes straight from this
        # index, so a sweep with nothing due reads nothing.
        Index("ix_task_node_action_due", "level", "done", "next_action_on"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id"), index=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("task_node.id"), index=True)
    level: Mapped[TaskLevel] = enum_column(TaskLevel)
    title: Mapped[str] = mapped_column(String(300))
    owner_unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"), index=True)
    start_date: Mapped[dt.date | None] = mapped_column(Date)
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    deliverable: Mapped[str] = mapped_column(Text, default="")  # 交付标准
    progress_percent: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    completed_at: Mapped[dt.datetime | None]
    interview_requested_at: Mapped[dt.datetime | None]  # 约谈
    escalated_at: Mapped[dt.datetime | None]  # red past the window → leadership
    # The local day the next red-item step falls due (colours.next_red_step_on): the first red
    # day until the interview is requested, then the day the window ends, then 9999-12-31
    # (colours.NEVER: escalated); NULL for a done item, or an open one not dated yet (the
    # next sweep dates it).
    next_action_on: Mapped[dt.date | None] = mapped_column(Date)


class SweepState(Base):
    """What the incremental sweep relies on: the colour policy its stored dates were computed
    with (a different fingerprint means a full recompute) and when it last ran."""

    __tablename__ = "sweep_state"
    id: Mapped[int] = mapped_column(primary_key=True)  # one row, id 1
    policy_fingerprint: Mapped[str] = mapped_column(String(64))
    last_run_at: Mapped[dt.datetime]


class ProgressReport(Base):
    __tablename__ = "progress_report"
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task_node.id"), index=True)
    reported_at: Mapped[dt.datetime]
    percent: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    reported_by: Mapped[str] = mapped_column(String(100))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)


class Evaluation(Base):
    __tablename__ = "evaluation"
    __table_args__ = (UniqueConstraint("issue_id", "round"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[Outcome] = enum_column(Outcome)
    satisfaction: Mapped[int] = mapped_column(Integer)
    lessons: Mapped[str] = mapped_column(Text, default="")
    evaluated_at: Mapped[dt.datetime]
