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
