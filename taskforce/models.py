"""Every table, imported in one place for Alembic and for `Base.metadata`."""

from sqlalchemy.orm import configure_mappers

from taskforce.budget.models import (
    AuditFinding,
    BudgetAdjustment,
    BudgetLine,
    BudgetReview,
    DisbursementSchedule,
    FiscalYear,
    LedgerEntry,
)
from taskforce.db import Base
from taskforce.emergency.models import EarlyWarning, Emergency, EmergencyEvent
from taskforce.idempotency import CommandRecord
from taskforce.loop.models import (
    Decision,
    Evaluation,
    ExpertOpinion,
    Issue,
    IssueReport,
    IssueUnit,
    Meeting,
    Plan,
    ProgressReport,
    SweepState,
    TaskNode,
    Vote,
)
from taskforce.notify.models import DeliveryAttempt, OutboxMessage
from taskforce.org.models import Group, Member, Unit
from taskforce.registers.models import CaseLesson, Milestone, Review, Risk
from taskforce.trail.models import TrailCheckpoint, TrailEntry, TrailHead

__all__ = [
    "AuditFinding",
    "Base",
    "BudgetAdjustment",
    "BudgetLine",
    "BudgetReview",
    "CaseLesson",
    "CommandRecord",
    "Decision",
    "DeliveryAttempt",
    "DisbursementSchedule",
    "EarlyWarning",
    "Emergency",
    "EmergencyEvent",
    "Evaluation",
    "ExpertOpinion",
    "FiscalYear",
    "Group",
    "Issue",
    "IssueReport",
    "IssueUnit",
    "LedgerEntry",
    "Meeting",
    "Member",
    "Milestone",
    "OutboxMessage",
    "Plan",
    "ProgressReport",
    "Review",
    "Risk",
    "SweepState",
    "TaskNode",
    "TrailCheckpoint",
    "TrailEntry",
    "TrailHead",
    "Unit",
    "Vote",
]

# Resolve every relationship now, once, while the process starts: SQLAlchemy would
# otherwise do it inside the first query of a flow run (~0.1 s of a deployment run's
# fresh process, issue 9), and a mapping error shows up here rather than mid-step.
configure_mappers()
