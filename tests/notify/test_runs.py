"""Concurrent runs, the status CLI, and the deliver-notifications flow on a real Prefect server."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from taskforce.cli import app
from taskforce.clock import SystemClock
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.notify.delivery import DELIVERY_HEADER, deliver_pending
from taskforce.notify.models import DeliveryStatus, OutboxMessage
from taskforce.notify.status import delivery_status
from tests.notify.conftest import outbox_lines, put


def test_concurrent_runs_never_send_a_row_twice(engine, ctx, receiver, make_channels):
    receiver.delays["/x"] = 0.2  # keep the first run's sends in flight while others claim
    channels = make_channels(("hook", "internal", receiver.url("/x"), ["executive"]))
    for i in range(12):
        put(engine, ctx, key=f"k{i}", audiences=["executive"])
    go = threading.Barrier(4)
    reports = []

    def run() -> None:
        go.wait()
        reports.append(deliver_pending(engine, ctx, channels=channels, limit=3))

    runs = [threading.Thread(target=run) for _ in range(4)]
    for r in runs:
        r.start()
    for r in runs:
        r.join()

    assert [r.claimed for r in reports] == [3, 3, 3, 3]  # each run its own rows
    keys = [a.headers[DELIVERY_HEADER] for a in receiver.at("/x")]
    assert sorted(keys) == sorted(f"k{i}:executive@hook" for i in range(12))


def test_status_per_audience_and_the_cli(engine, ctx, receiver, make_channels):
    channels = make_channels(("hook", "internal", receiver.url("/x"), ["executive"]))
    put(engine, ctx, key="a", audiences=["executive", "leadership"])
    put(engine, ctx, key="b", audiences=["executive"])
    [unroutable] = put(engine, ctx, key="c", audiences=["wg:data"])  # no channel: failing
    deliver_pending(engine, ctx, channels=channels, limit=1)  # the oldest row: "a" to executive
    deliver_pending(engine, ctx, channels=channels, message_ids=[unroutable])

    with unit_of_work(engine) as session:
        rows = {s.audience: s for s in delivery_status(session)}
    assert (rows["executive"].delivered, rows["executive"].pending) == (1, 1)
    assert (rows["leadership"].pending, rows["leadership"].total) == (1, 1)
    assert rows["wg:data"].failing == 1

    result = CliRunner().invoke(app, ["notify", "status"])
    assert result.exit_code == 0, result.output
    assert "executive" in result.output and "leadership" in result.output
    for column in ("pending", "delivered", "failing", "dead"):
        assert column in result.output


@pytest.mark.slow
@pytest.mark.prefect
def test_the_deliver_notifications_flow_runs_for_real(
    engine, prefect_server, tmp_path, monkeypatch
):
    from flows.notifications import DeliverNotificationsParams, deliver_notifications

    path = tmp_path / "outbox.jsonl"
    monkeypatch.setenv("TASKFORCE_OUTBOX_FILE", str(path))
    [message_id] = put(engine, Context.default(SystemClock()), key="flow", audiences=["executive"])

    result = deliver_notifications(DeliverNotificationsParams(limit=10))

    assert result["delivered"] == 1 and result["targets_ok"] == 1
    [line] = outbox_lines(path)
    assert line["audience"] == "executive"
    with unit_of_work(engine) as session:
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.id == message_id)).one()
    assert row.status == DeliveryStatus.delivered
    # Run again: nothing is sent twice.
    assert deliver_notifications(DeliverNotificationsParams())["claimed"] == 0
    assert len(outbox_lines(path)) == 1


@pytest.mark.slow
@pytest.mark.prefect
def test_a_delivery_run_claims_again_while_a_full_claim_was_due(
    engine, prefect_server, tmp_path, monkeypatch
):
    """One claim of `limit` rows a minute left a storm's thousand pages waiting for hours
    (a storm trial: 963 rows due, 100 sent a minute). A run claims again while the last
    claim was full: 25 due with a limit of 10 are three claims, one run."""
    from flows.notifications import DeliverNotificationsParams, deliver_notifications

    path = tmp_path / "outbox.jsonl"
    monkeypatch.setenv("TASKFORCE_OUTBOX_FILE", str(path))
    ctx = Context.default(SystemClock())
    for n in range(25):
        put(engine, ctx, key=f"storm-{n}", audiences=["executive"])

    result = deliver_notifications(DeliverNotificationsParams(limit=10))

    assert (result["claimed"], result["delivered"], result["targets_ok"]) == (25, 25, 25)
    assert len(outbox_lines(path)) == 25
    # Sending only some rows (a flow's own pages) claims once, whatever else is due.
    put(engine, ctx, key="other", audiences=["executive"])
    [mine] = put(engine, ctx, key="mine", audiences=["executive"])
    only = deliver_notifications(DeliverNotificationsParams(limit=1, message_ids=[mine]))
    assert only["claimed"] == 1 and len(outbox_lines(path)) == 26
