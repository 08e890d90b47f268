from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from taskforce.columns import classification_column, enum_column
from taskforce.db import Base
from taskforce.policy.schema import Classification


class Level(StrEnum):
    I = "I"  # noqa: E741  重大危机
    II = "II"  # 较大问题
    III = "III"  # 一般事项

    @property
    def severity(self) -> int:
        """I is the most severe: 3, 2, 1 (a repeat more severe raises the emergency)."""
        return _LEVEL_SEVERITY[self]


_LEVEL_SEVERITY = {Level.I: 3, Level.II: 2, Level.III: 1}


class EmergencyStatus(StrEnum):
    pending_dispatch = "pending_dispatch"  # persisted, flow not started yet
    dispatched = "dispatched"
    acknowledged = "acknowledged"
    resolved = "resolved"
    closed = "closed"  # follow-up issue opened


class WarningColour(StrEnum):
    yellow = "yellow"  # 关注级
    orange = "orange"  # 警示级
    red = "red"  # 危急级


class WarningStatus(StrEnum):
    open = "open"
    handled = "handled"
    escalated = "escalated"


# The "open" condition of the dedup index, as literal SQL: a query must repeat it verbatim
# (no bound parameters) for SQLite to use the partial index.
OPEN_DEDUP_WHERE = "status NOT IN ('resolved', 'closed')"


class Emergency(Base):
    __tablename__ = "emergency"
    __table_args__ = (
        # One open emergency per (source, dedup key); a resolved one frees the key.
        Index(
            "uq_emergency_open_dedup",
            "source",
            "dedup_key",
            unique=True,
            sqlite_where=text(OPEN_DEDUP_WHERE),
            postgresql_where=text(OPEN_DEDUP_WHERE),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(36), unique=True)
    source: Mapped[str] = mapped_column(String(64))
    dedup_key: Mapped[str] = mapped_column(String(200))
    level: Mapped[Level] = enum_column(Level)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    classification: Mapped[Classification] = classification_column()
    status: Mapped[EmergencyStatus] = enum_column(
        EmergencyStatus, default=EmergencyStatus.pending_dispatch, index=True
    )
    is_drill: Mapped[bool] = mapped_column(Boolean, default=False)
    leading_group: Mapped[str] = mapped_column(String(64))
    working_group: Mapped[str | None] = mapped_column(String(64))
    opened_at: Mapped[dt.datetime]
    acknowledged_at: Mapped[dt.datetime | None]
    resolved_at: Mapped[dt.datetime | None]
    deadlines: Mapped[dict] = mapped_column(default=dict)  # name -> ISO instant
    escalation_step: Mapped[int] = mapped_column(Integer, default=0)
    pages_at_step: Mapped[int] = mapped_column(Integer, default=0)
    next_escalation_at: Mapped[dt.datetime | None]
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    follow_up_issue_id: Mapped[int | None] = mapped_column(ForeignKey("issue.id"))
    payload: Mapped[dict] = mapped_column(default=dict)
    repeats: Mapped[int] = mapped_column(Integer, default=0)  # duplicate deliveries attached


class EmergencyEvent(Base):
    """Pages, acknowledgements, escalations, reserve draws of one emergency."""

    __tablename__ = "emergency_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    emergency_id: Mapped[int] = mapped_column(ForeignKey("emergency.id"), index=True)
    kind: Mapped[str] = mapped_column(
        String(32)
    )  # page / acknowledge / escalate / repeat / resolve / reserve_draw
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(100))
    detail: Mapped[dict] = mapped_column(default=dict)


class EarlyWarning(Base):
    """预警 (SPEC §5): yellow 关注级, orange 警示级, red 危急级."""

    __tablename__ = "warning"
    # A subject's warnings, settled when it completes (migration 0007_warning_subject).
    __table_args__ = (Index("ix_warning_subject", "subject_type", "subject_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)  # raised once per cause
    colour: Mapped[WarningColour] = enum_column(WarningColour)
    source: Mapped[str] = mapped_column(String(32))  # manual / sweep / risk / loop
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    handled_by: Mapped[str] = mapped_column(String(32))
    classification: Mapped[Classification] = classification_column()
    raised_at: Mapped[dt.datetime]
    deadline_at: Mapped[dt.datetime]
    status: Mapped[WarningStatus] = enum_column(
        WarningStatus, default=WarningStatus.open, index=True
    )
    handled_at: Mapped[dt.datetime | None]
    escalated_at: Mapped[dt.datetime | None]
