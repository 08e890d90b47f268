"""The columns the KPIs need, read straight from SQL into pandas (ARCHITECTURE rule 7).

No ORM objects and no text columns: a KPI is a number over many rows, and a
frame without titles cannot leak a secret title into a report.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import BigInteger, Connection, Text, cast, func, select, type_coerce
from sqlalchemy.types import NullType

from taskforce.budget.models import (
    AuditFinding,
    BudgetAdjustment,
    BudgetLine,
    LedgerEntry,
    LineStatus,
)
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
    "lines": ["approved_at"],
    "adjustments": ["decided_at"],
}
_FLAGS = {
    "tasks": ["done"],
    "milestones": ["achieved"],
    "lines": ["is_reserve"],
    "findings": ["resolved"],
    "emergencies": ["is_drill"],
    "members": ["full_time"],
}
_NUMBERS = {
    "issues": ["id"],
    "tasks": ["percent"],
    "evaluations": ["satisfaction"],
    "lines": ["id", "fiscal_year", "amount_fen"],
    "adjustments": ["line_id", "delta_fen"],
    "ledger": ["fiscal_year", "amount_fen", "entries"],
    "members": ["training_hours"],
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
    # Approved changes to a line's amount, with when they were decided: a line's amount as
    # of a past day is its amount now less the changes approved after that day.
    adjustments: pd.DataFrame
    # Daily totals: one row per (fiscal year, kind, entry date) with the sum of its entries'
    # amounts and their number (`entries`). Every KPI and chart sums money by year, kind
    # and date range; summing a million entries in SQL reads 1,400 rows instead of 1M.
    ledger: pd.DataFrame
    findings: pd.DataFrame
    warnings: pd.DataFrame
    emergencies: pd.DataFrame
    members: pd.DataFrame
    # Columns derived from the frames once for all periods (taskforce.kpi.compute).
    derived: dict = field(default_factory=dict, repr=False, compare=False)


FRAME_NAMES = tuple(name for name in Frames.__dataclass_fields__ if name != "derived")
_FETCH_ROWS = 50_000


def raw_frame(conn: Connection, stmt) -> pd.DataFrame:
    """The rows of a select as the driver returns them: no per-value type processing.

    SQLAlchemy's result processors (aware datetimes, dates, enums, booleans) cost more than
    the read itself on a million rows; the caller converts whole columns with pandas
    instead (`instants`, `days`, `flags`). The WHERE clause keeps its typed binds.
    """
    plain = stmt.with_only_columns(
        *[type_coerce(c, NullType()).label(c.key) for c in stmt.selected_columns],
        maintain_column_froms=True,
    )
    result = conn.execute(plain)
    keys = list(result.keys())
    columns: list[list] = [[] for _ in keys]
    # One object per distinct value: the driver makes a new str for every cell, and a ledger
    # repeats an issue's number, title and owner on each of its rows (hundreds of MB at scale).
    # (Equal numbers of different types, 1 and 1.0, share one object too: numeric columns are
    # converted as a whole by the caller.)
    distinct: list[dict] = [{} for _ in keys]
    cursor = result.cursor  # straight from the DBAPI: with nothing to process, Row objects
    try:  # are only overhead (and pandas probes each one for named-tuple fields)
        while rows := cursor.fetchmany(_FETCH_ROWS):
            for column, seen, values in zip(
                columns, distinct, zip(*rows, strict=True), strict=True
            ):
                column.extend(map(seen.setdefault, values, values))
    finally:
        result.close()
    return pd.DataFrame(
        {key: pd.Series(values, dtype=object) for key, values in zip(keys, columns, strict=True)},
        columns=keys,
    )


def instants(column: pd.Series) -> pd.Series:
    """Stored UTC instants (SQLite: naive text; PostgreSQL: aware datetimes) as UTC."""
    return pd.to_datetime(column, utc=True, format="ISO8601")


def days(column: pd.Series) -> pd.Series:
    """Stored dates (SQLite: text; PostgreSQL: date objects) as datetime64."""
    return pd.to_datetime(column, format="ISO8601")


def latest_deadline(column: pd.Series) -> pd.Series:
    """Stored deadline maps (JSON text) as the latest of each map's instants, UTC; NaT where
    a map is empty or missing."""

    def latest(value: str | None) -> str | None:
        deadlines = json.loads(value) if value else None
        return max(deadlines.values(), key=dt.datetime.fromisoformat) if deadlines else None

    return pd.to_datetime(column.map(latest), utc=True, format="ISO8601")


def flags(column: pd.Series) -> pd.Series:
    """Stored booleans (SQLite: 0/1; PostgreSQL: bool) as bool; missing is False."""
    return column.fillna(False).astype(bool)


def ledger_totals():
    """The ledger as daily totals per fiscal year and kind (Frames.ledger). Integer fen: the
    sum is exact (cast: PostgreSQL sums bigint as numeric)."""
    return select(
        LedgerEntry.fiscal_year,
        LedgerEntry.kind,
        LedgerEntry.entry_date,
        cast(func.sum(LedgerEntry.amount_fen), BigInteger).label("amount_fen"),
        func.count().label("entries"),
    ).group_by(
        # entry_date first: SQLite then walks its entry_date index, a third less CPU than
        # the fiscal_year index it picks otherwise (both group in a temporary B-tree).
        LedgerEntry.entry_date,
        LedgerEntry.fiscal_year,
        LedgerEntry.kind,
    )


def load_frames(conn: Connection) -> Frames:
    """One query per table, only the columns some KPI reads."""
    return Frames(**read_frames(conn, FRAME_NAMES))


def read_frames(conn: Connection, names) -> dict[str, pd.DataFrame]:
    """Some of the frames (by Frames field name): load_frames in parts, so that a caller can
    read the big ones on connections of their own at the same time."""
    queries = _queries()
    return {name: _converted(name, raw_frame(conn, queries[name])) for name in names}


def _queries() -> dict:
    return {
        "issues": select(
            Issue.id,
            Issue.stage,
            Issue.reported_at,
            Issue.first_response_at,
            Issue.closed_at,
            Issue.stage_due_at,
        ),
        "tasks": select(
            TaskNode.start_date,
            TaskNode.due_date,
            TaskNode.done,
            TaskNode.completed_at,
            # The colours are derived (taskforce/loop/colours.py): from the dates and this.
            TaskNode.progress_percent.label("percent"),
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
            BudgetLine.approved_at,
        ),
        "adjustments": select(
            BudgetAdjustment.line_id, BudgetAdjustment.delta_fen, BudgetAdjustment.decided_at
        ).where(BudgetAdjustment.status == LineStatus.approved),
        "ledger": ledger_totals(),
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
            # As text on both databases: psycopg would hand back dicts, which the raw
            # read cannot share between equal cells (`raw_frame`).
            cast(Emergency.deadlines, Text).label("deadlines"),
        ),
        "members": select(Member.full_time, Member.training_hours).where(Member.active.is_(True)),
    }


def _converted(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Whole-column conversion of a raw frame to the types the KPIs compute with."""
    for col in _INSTANTS.get(name, []):
        frame[col] = instants(frame[col])
    for col in _DATES.get(name, []):
        frame[col] = days(frame[col])
    for col in _FLAGS.get(name, []):
        frame[col] = flags(frame[col])
    for col in _NUMBERS.get(name, []):
        frame[col] = pd.to_numeric(frame[col])
    for col in frame.columns:
        if frame[col].dtype == object:
            # Text columns (enum values) as plain strings, missing as None.
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame
