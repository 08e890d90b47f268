"""deliver-notifications: send the outbox through Apprise (every minute, and after each step)."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel, Field

from flows.parameters import described
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
    """Send due notifications; rows that fail wait for their backoff, delivered ones are never resent."""
    return deliver_pending_notifications(
        limit=params.limit,
        message_ids=params.message_ids,
        trail_entry_ids=params.trail_entry_ids,
    )


if __name__ == "__main__":
    print(deliver_notifications())
