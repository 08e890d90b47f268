from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from taskforce.columns import classification_column, enum_column
from taskforce.db import Base
from taskforce.policy.schema import Classification


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failing = "failing"  # last attempt failed, will retry
    dead = "dead"  # gave up: dead-lettered


class OutboxMessage(Base):
    """A notification to one audience, written in the transaction of the event that causes it."""

    __tablename__ = "outbox_message"
    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    event_kind: Mapped[str] = mapped_column(String(64), index=True)
    audience: Mapped[str] = mapped_column(
        String(64)
    )  # an Apprise tag: leadership, executive, member-E1…
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    classification: Mapped[Classification] = classification_column()
    context: Mapped[dict] = mapped_column(default=dict)  # template variables
    is_drill: Mapped[bool] = mapped_column(default=False)
    priority: Mapped[int] = mapped_column(Integer, default=0)  # emergencies first
    status: Mapped[DeliveryStatus] = enum_column(
        DeliveryStatus, default=DeliveryStatus.pending, index=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime]
    next_attempt_at: Mapped[dt.datetime]
    delivered_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    trail_entry_id: Mapped[int | None]  # the cause on the decision trail


class DeliveryAttempt(Base):
    """The result of one attempt for one target (Apprise reports per target)."""

    __tablename__ = "delivery_attempt"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox_message.id"), index=True)
    target: Mapped[str] = mapped_column(String(200))  # the channel's name, never its secret URL
    ok: Mapped[bool]
    at: Mapped[dt.datetime]
    error: Mapped[str | None] = mapped_column(Text)
