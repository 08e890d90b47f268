"""Reading the domain database and driving the stack, shared by the e2e tests."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from taskforce.db import get_engine, unit_of_work
from taskforce.emergency.models import Emergency
from taskforce.loop.models import Issue
from taskforce.notify.models import DeliveryStatus, OutboxMessage
from tests.e2e.stack import Stack, wait_for

DELIVER = "deliver-notifications/deliver-notifications"
EMERGENCY_RESPONSE = "emergency-response/emergency-response"


def outbox(stack: Stack, *, kind: str, subject_id: str) -> list[OutboxMessage]:
    with unit_of_work(get_engine(stack.database_url)) as s:
        rows = s.scalars(
            select(OutboxMessage).where(
                OutboxMessage.event_kind == kind, OutboxMessage.subject_id == subject_id
            )
        ).all()
        s.expunge_all()
        return list(rows)


def emergency(stack: Stack, public_id: str) -> Emergency:
    with unit_of_work(get_engine(stack.database_url)) as s:
        row = s.scalar(select(Emergency).where(Emergency.public_id == public_id))
        s.expunge_all()
        return row


def issue_by_title(stack: Stack, title: str) -> Issue | None:
    with unit_of_work(get_engine(stack.database_url)) as s:
        row = s.scalar(select(Issue).where(Issue.title == title))
        s.expunge_all()
        return row


def deliver(stack: Stack) -> None:
    """One run of the deliver-notifications deployment, as its schedule would start it."""
    run = stack.wait_final(stack.run_deployment(DELIVER))
    assert run.state.is_completed(), run.state


def statuses(stack: Stack, rows: list[OutboxMessage]) -> set[DeliveryStatus]:
    with unit_of_work(get_engine(stack.database_url)) as s:
        return set(
            s.scalars(
                select(OutboxMessage.status).where(OutboxMessage.id.in_([r.id for r in rows]))
            ).all()
        )


def deliver_until(stack: Stack, rows: list[OutboxMessage], timeout: float = 180) -> None:
    """Run delivery until each row reached the receiver and is recorded as delivered.

    A row can reach the receiver a moment before its sender (the emergency flow
    pages at once) commits the status, so arrival alone is not the end: then we
    only wait, and start no delivery run that could race the sender.
    """

    def settled() -> bool:
        if statuses(stack, rows) == {DeliveryStatus.delivered}:
            return True
        if not all(stack.receiver.deliveries(r.idempotency_key + "@") for r in rows):
            deliver(stack)  # a failed row waits for its backoff
        return False

    wait_for("the notifications delivered", settled, timeout, stack.logs())


def assert_delivered_once(stack: Stack, rows: list[OutboxMessage]) -> None:
    assert rows
    for row in rows:
        got = stack.receiver.deliveries(row.idempotency_key + "@")
        assert len(got) == 1, (row.idempotency_key, [m.delivery for m in got])
    assert statuses(stack, rows) == {DeliveryStatus.delivered}


def open_emergency(stack: Stack, title: str, level: str = "I") -> tuple[str, str]:
    """A signed native webhook; returns (emergency id, dedup key)."""
    dedup_key = f"e2e-{uuid.uuid4().hex[:8]}"
    r = stack.signed_post(
        "/v1/emergencies/monitoring", {"dedup_key": dedup_key, "level": level, "title": title}
    )
    assert r.status_code == 202, r.text
    body = r.json()
    # Committed and answered before its flow run starts: the gateway dispatches after the 202.
    assert body["created"] and body["status"] == "pending_dispatch", body
    wait_for(
        f"the gateway to start the flow run of {body['emergency_id']}",
        lambda: emergency(stack, body["emergency_id"]).flow_run_id,
        60,
        stack.logs(),
    )
    return body["emergency_id"], dedup_key


def answer(stack: Stack, dedup_key: str, action: str) -> None:
    r = stack.signed_post(f"/v1/emergencies/monitoring/{action}", {"dedup_key": dedup_key})
    assert r.status_code == 200, r.text


def wait_paged(stack: Stack, public_id: str) -> list[OutboxMessage]:
    return wait_for(
        f"the on-call page of {public_id}",
        lambda: outbox(stack, kind="emergency_page", subject_id=public_id),
        120,
        stack.logs(),
    )
