"""deliver-notifications: send the outbox through Apprise (every minute, and after each step)."""

from __future__ import annotations

import time

from prefect import flow
from pydantic import BaseModel, Field

from flows.parameters import described
from taskforce.policy import load_policy
from tasks.notify import deliver_pending_notifications


class DeliverNotificationsParams(BaseModel):
    """What one delivery run sends."""

    limit: int = Field(
        100,
        ge=1,
        le=10_000,
        title="Most messages to send",
        description="Due outbox rows claimed in this run, emergencies first.",
    )
    message_ids: list[int] | None = Field(
        None,
        title="Only these messages",
        description="Outbox ids to send now (an emergency flow passes its pages); empty sends all due rows.",
    )
    trail_entry_ids: list[int] | None = Field(
        None,
        title="Only what these steps caused",
        description="Decision-trail entry ids: send the notifications those steps wrote, right after them.",
    )


@flow(name="deliver-notifications", log_prints=True)
def deliver_notifications(
    params: DeliverNotificationsParams = described(
        DeliverNotificationsParams(), "发送选项 Delivery options: the defaults suit the schedule."
    ),
) -> dict:
    """Send due notifications; rows that fail wait for their backoff, delivered ones are never resent.

    A run over all due rows claims `limit` at a time until fewer are due, for at most
    notifications.drain_seconds: one claim a minute left a storm's thousand pages hours
    behind (a storm trial: 963 rows due, 100 sent a minute)."""
    targeted = params.message_ids is not None or params.trail_entry_ids is not None
    deadline = time.monotonic() + load_policy().notifications.drain_seconds
    total: dict = {}
    while True:
        report = deliver_pending_notifications(
            limit=params.limit,
            message_ids=params.message_ids,
            trail_entry_ids=params.trail_entry_ids,
        )
        total = _added(total, report)
        if targeted or report["claimed"] < params.limit or time.monotonic() >= deadline:
            return total


def _added(total: dict, report: dict) -> dict:
    """Two delivery reports as one: counts added, lists joined."""
    return {key: total.get(key, type(value)()) + value for key, value in report.items()}


if __name__ == "__main__":
    print(deliver_notifications())
