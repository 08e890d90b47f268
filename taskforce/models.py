"""Every table, imported in one place for Alembic and for `Base.metadata`."""

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
from taskforce.trail.models import TrailEntry, TrailHead

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
    "TrailEntry",
    "TrailHead",
    "Unit",
    "Vote",
]
