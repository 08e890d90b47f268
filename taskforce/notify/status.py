"""Delivery status per audience: pending, delivered, failing, dead (one GROUP BY)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from taskforce.notify.models import DeliveryStatus, OutboxMessage


@dataclass(frozen=True)
class AudienceStatus:
    audience: str
    pending: int = 0
    delivered: int = 0
    failing: int = 0
    dead: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.delivered + self.failing + self.dead


def delivery_status(session: Session) -> list[AudienceStatus]:
    rows = session.execute(
        select(OutboxMessage.audience, OutboxMessage.status, func.count(OutboxMessage.id))
        .group_by(OutboxMessage.audience, OutboxMessage.status)
        .order_by(OutboxMessage.audience)
    ).all()
    counts: dict[str, dict[str, int]] = {}
    for audience, status, count in rows:
        counts.setdefault(audience, {})[DeliveryStatus(status).value] = int(count)
    return [AudienceStatus(audience, **by_status) for audience, by_status in counts.items()]


@dataclass(frozen=True)
class Problem:
    message_id: int
    event_kind: str
    audience: str
    status: str
    attempts: int
    next_attempt_at: object
    last_error: str | None


def problems(session: Session, limit: int = 20) -> list[Problem]:
    """Failing and dead-lettered rows, dead first, newest first, with their last error."""
    rows = session.execute(
        select(
            OutboxMessage.id,
            OutboxMessage.event_kind,
            OutboxMessage.audience,
            OutboxMessage.status,
            OutboxMessage.attempts,
            OutboxMessage.next_attempt_at,
            OutboxMessage.last_error,
        )
        .where(OutboxMessage.status.in_([DeliveryStatus.failing, DeliveryStatus.dead]))
        .order_by(OutboxMessage.status, OutboxMessage.id.desc())
        .limit(limit)
    ).all()
    return [Problem(r[0], r[1], r[2], DeliveryStatus(r[3]).value, r[4], r[5], r[6]) for r in rows]
