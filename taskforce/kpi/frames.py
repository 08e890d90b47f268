"""The columns the KPIs need, read straight from SQL into pandas (ARCHITECTURE rule 7).

No ORM objects and no text columns: a KPI is a number over many rows, and a
frame without titles cannot leak a secret title into a report.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection, select

from taskforce.budget.models import AuditFinding, BudgetLine, LedgerEntry
from taskforce.emergency.models import EarlyWarning, Emergency
from taskforce.loop.models import Evaluation, Issue, TaskLevel, TaskNode
from taskforce.org.models import Member
from taskforce.registers.models import Milestone

_INSTANTS = {
    "issues": ["reported_at", "first_response_at", "closed_at", "stage_due_at"],
    "tasks": ["completed_at"],
    "evaluations": ["evaluated_at"],
    "warnings": ["raised_at", "deadline_at", "handled_at"],
    "emergencies": ["opened_at", "acknowledged_at", "resolved_at"],
}
_DATES = {
    "tasks": ["start_date", "due_date"],
    "milestones": ["due_date", "achieved_on"],
    "ledger": ["entry_date"],
}


@dataclass
class Frames:
    issues: pd.DataFrame
    tasks: pd.DataFrame  # action items only
    evaluations: pd.DataFrame
    milestones: pd.DataFrame
    lines: pd.DataFrame
    ledger: pd.DataFrame
    findings: pd.DataFrame
    warnings: pd.DataFrame
    emergencies: pd.DataFrame
    members: pd.DataFrame


def load_frames(conn: Connection) -> Frames:
    """One query per table, only the columns some KPI reads."""
    queries = {
        "issues": select(
            Issue.id,
            Issue.stage,
            Issue.reported_at,
            Issue.first_response_at,
            Issue.closed_at,
            Issue.stage_due_at,
        ),
        "tasks": select(
            TaskNode.id,
            TaskNode.issue_id,
            TaskNode.start_date,
            TaskNode.due_date,
            TaskNode.done,
            TaskNode.completed_at,
            TaskNode.colour,
        ).where(TaskNode.level == TaskLevel.action_item),
        "evaluations": select(Evaluation.satisfaction, Evaluation.evaluated_at),
        "milestones": select(
            Milestone.kind, Milestone.due_date, Milestone.achieved, Milestone.achieved_on
        ),
        "lines": select(
            BudgetLine.id,
            BudgetLine.fiscal_year,
            BudgetLine.amount_fen,
            BudgetLine.status,
            BudgetLine.is_reserve,
        ),
        "ledger": select(
            LedgerEntry.fiscal_year,
            LedgerEntry.line_id,
            LedgerEntry.kind,
            LedgerEntry.entry_date,
            LedgerEntry.amount_fen,
        ),
        "findings": select(
            AuditFinding.severity,
            AuditFinding.first_seen_week,
            AuditFinding.resolved,
            AuditFinding.resolved_week,
        ),
        "warnings": select(
            EarlyWarning.colour,
            EarlyWarning.raised_at,
            EarlyWarning.deadline_at,
            EarlyWarning.handled_at,
        ),
        "emergencies": select(
            Emergency.level,
            Emergency.is_drill,
            Emergency.opened_at,
            Emergency.acknowledged_at,
            Emergency.resolved_at,
        ),
        "members": select(Member.full_time, Member.training_hours).where(Member.active.is_(True)),
    }
    frames = {}
    for name, stmt in queries.items():
        frame = pd.read_sql(stmt, conn)
        for col in _INSTANTS.get(name, []):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        for col in _DATES.get(name, []):
            frame[col] = pd.to_datetime(frame[col])
        for col in frame.columns:
            if frame[col].dtype == object and col not in _DATES.get(name, []):
                # Enum members come back as StrEnum objects; plain strings group cleanly.
                frame[col] = frame[col].map(lambda v: v if v is None else str(v))
        frames[name] = frame
    return Frames(**frames)
