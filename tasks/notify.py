"""Prefect tasks around notification delivery (thin: the work is in taskforce.notify)."""

from __future__ import annotations

from prefect import get_run_logger, task

from taskforce.context import Context
from taskforce.db import get_engine
from taskforce.notify.delivery import TargetResult, deliver_pending
from taskforce.trail.service import last_id


def trail_position() -> int:
    """Where the decision trail ends now: read before a step, the entries after it are the
    step's, and so are the notifications hanging off them."""
    with get_engine().connect() as connection:  # a read: no session, nothing to commit
        return last_id(connection)


@task(name="deliver-pending-notifications", retries=0)
def deliver_pending_notifications(
    limit: int = 100,
    message_ids: list[int] | None = None,
    trail_entry_ids: list[int] | None = None,
) -> dict:
    """Send due outbox rows once; the domain database records every target's result.

    No Prefect retries: a failed target is retried by the outbox's own backoff,
    and re-running the task never re-sends a delivered target.
    """
    logger = get_run_logger()

    def log_target(result: TargetResult) -> None:
        if result.ok:
            logger.info("delivered message %s via %s", result.message_id, result.channel)
        else:
            logger.warning(
                "message %s via %s failed: %s", result.message_id, result.channel, result.error
            )

    report = deliver_pending(
        get_engine(),
        Context.default(),
        limit=limit,
        message_ids=message_ids,
        trail_entry_ids=trail_entry_ids,
        on_sent=log_target,
    )
    return report.as_dict()
