"""Faults the production path survives, each on the real stack:

* the emergency worker SIGKILLed before it ran an emergency's response: the page
  goes out anyway, and the run a new worker picks up (or a rerun) pages nobody twice;
* the notification receiver down for a while: everything arrives once it is back;
* the domain PostgreSQL restarted in the middle of a dispatch sweep's
  transaction: nothing of it is left half-written, and the next sweep is right.
"""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest
from sqlalchemy import func, select

from taskforce.context import Context
from taskforce.db import get_engine, unit_of_work
from taskforce.emergency.models import EmergencyStatus
from taskforce.idempotency import CommandRecord
from taskforce.notify.models import DeliveryStatus, OutboxMessage
from taskforce.policy import load_policy
from taskforce.trail.models import TrailEntry
from tests.e2e.helpers import (
    EMERGENCY_RESPONSE,
    answer,
    assert_delivered_once,
    deliver,
    deliver_until,
    emergency,
    issue_by_title,
    open_emergency,
    outbox,
    wait_paged,
)
from tests.e2e.stack import wait_for
from tests.loop.helpers import Loop

pytestmark = pytest.mark.slow


def test_emergency_worker_lost_the_page_goes_out_and_a_later_run_pages_nobody_twice(
    sqlite_stack,
):
    """The emergency worker's machine is lost (SIGKILL to its process group) before it ran
    the response. A response run lasts seconds and does not wait for the answers, so a
    lost worker is what leaves an emergency's run undone: on-call is paged anyway (by the
    gateway), the answers are taken, and the run a new worker picks up, like a rerun by
    hand, finishes the emergency without paging anyone twice."""
    stack = sqlite_stack
    worker = next(p for p in stack.procs if p.name == "worker-taskforce-emergency")
    worker.kill_group()
    worker.popen.wait(10)
    stack.procs.remove(worker)

    public_id, dedup_key = open_emergency(stack, "核心交换机宕机 Core switch down")
    first_run = emergency(stack, public_id).flow_run_id
    pages = wait_paged(stack, public_id)
    # The gateway's dispatch thread paged before it started the run, and sends the pages
    # itself; deliver_until returns once they reached on-call *and* are recorded.
    deliver_until(stack, pages)
    with stack.client() as client:
        assert not client.read_flow_run(first_run).state.is_final()  # nobody ran it
    answer(stack, dedup_key, "acknowledge")
    answer(stack, dedup_key, "resolve")

    stack.start_worker("taskforce-emergency")
    final = stack.wait_final(first_run)
    assert final.state.is_completed(), final.state
    closed = emergency(stack, public_id)
    assert closed.status == EmergencyStatus.closed and closed.follow_up_issue_id is not None
    # The operator's rerun (README: a run lost with its machine is started again).
    rerun = stack.wait_final(
        stack.run_deployment(EMERGENCY_RESPONSE, {"emergency_id": public_id}, f"{public_id}:rerun")
    )
    assert rerun.state.is_completed(), rerun.state

    # Nobody paged twice, each page sent once, one follow-up issue.
    after = outbox(stack, kind="emergency_page", subject_id=public_id)
    assert sorted(r.id for r in after) == sorted(r.id for r in pages)
    deliver(stack)  # delivery after the runs sends nothing again
    assert_delivered_once(stack, pages)
    assert emergency(stack, public_id).follow_up_issue_id == closed.follow_up_issue_id


def test_receiver_down_everything_arrives_once_it_is_back(sqlite_stack):
    stack = sqlite_stack
    stack.receiver.stop()
    try:
        # Two unrelated reports (near-identical titles would be linked as duplicates).
        tag = uuid.uuid4().hex[:6]
        titles = [
            f"电子证照互认缺失 Licences not recognised {tag}",
            f"窗口排队过长 Queues at counters {tag}",
        ]
        for title in titles:
            run = stack.wait_final(
                stack.run_deployment(
                    "report-issue/report-issue",
                    {"form": {"title": title, "reporting_unit": "tax"}, "operator": "e2e"},
                )
            )
            assert run.state.is_completed(), run.state
        rows = [
            row
            for title in titles
            for row in outbox(
                stack, kind="issue_reported", subject_id=issue_by_title(stack, title).number
            )
        ]
        deliver(stack)  # every target refuses the connection
        with unit_of_work(get_engine(stack.database_url)) as s:
            waiting = s.execute(
                select(OutboxMessage.status, OutboxMessage.attempts).where(
                    OutboxMessage.id.in_([r.id for r in rows])
                )
            ).all()
        assert all(st != DeliveryStatus.delivered and n >= 1 for st, n in waiting), waiting
        assert not any(stack.receiver.deliveries(r.idempotency_key + "@") for r in rows)
    finally:
        stack.receiver.start()
    deliver_until(stack, rows)  # the backoff (1 s in the e2e config) passes, delivery retries
    deliver(stack)
    assert_delivered_once(stack, rows)


def _counts(engine) -> dict[str, int]:
    with unit_of_work(engine) as s:
        return {
            "trail": s.scalar(select(func.count()).select_from(TrailEntry)),
            "outbox": s.scalar(select(func.count()).select_from(OutboxMessage)),
            "commands": s.scalar(select(func.count()).select_from(CommandRecord)),
        }


def test_postgres_restarted_during_a_dispatch_sweep(postgres_stack, domain_cluster):
    stack = postgres_stack
    engine = get_engine(stack.database_url)
    # An issue reported 60 days ago whose coordination was never held: the sweep must warn once.
    from taskforce.clock import ManualClock

    past = Context(
        policy=load_policy(), clock=ManualClock(dt.datetime.now(dt.UTC) - dt.timedelta(days=60))
    )
    number = (
        Loop(engine, past).report(title=f"协调超期 Overdue {uuid.uuid4().hex[:6]}").issue_number
    )
    overdue_key = f"overdue:{number}:reported:"
    before = _counts(engine)

    # Hold the trail's table lock, so the sweep's transaction stops half-way (its command
    # record inserted, the trail head locked, the trail entry waiting) until the server
    # goes down under it.
    blocker = psycopg.connect(stack.database_url)
    try:
        blocker.execute("LOCK TABLE trail_entry IN EXCLUSIVE MODE")
        sweep = stack.run_deployment("dispatch-sweep/dispatch-sweep")

        def sweep_blocked() -> bool:
            # The sweep's bulk rows go through COPY on PostgreSQL (taskforce/bulk.py), a
            # single entry through INSERT: either waits on the lock.
            with psycopg.connect(stack.database_url, autocommit=True) as probe:
                return bool(
                    probe.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database() AND (query ILIKE "
                        "'INSERT INTO trail_entry%' OR query ILIKE 'COPY trail_entry%')"
                    ).fetchone()[0]
                )

        wait_for("the sweep to wait on the trail", sweep_blocked, 120, stack.logs())
        domain_cluster.ctl("stop")  # fast shutdown: every open transaction is rolled back
        domain_cluster.ctl("start")
    finally:
        # Never leave the lock behind: the stack is shared by the tests that follow.
        blocker.close()
    run = stack.wait_final(sweep)
    assert not run.state.is_completed(), run.state  # the sweep lost its connection and failed

    # Nothing of the interrupted sweep is left: no command record, trail entry or outbox row.
    assert _counts(engine) == before
    with unit_of_work(engine) as s:
        assert not s.scalar(
            select(func.count())
            .select_from(CommandRecord)
            .where(CommandRecord.key.startswith(overdue_key))
        )

    # The next sweep warns exactly once; the one after adds nothing.
    for _ in range(2):
        again = stack.wait_final(stack.run_deployment("dispatch-sweep/dispatch-sweep"))
        assert again.state.is_completed(), again.state
    after = _counts(engine)
    assert after["commands"] == before["commands"] + 1
    assert after["trail"] == before["trail"] + 1
    warned = outbox(stack, kind="stage_overdue", subject_id=number)
    assert {r.audience for r in warned} == {"executive"}
    deliver_until(stack, warned)
    assert_delivered_once(stack, warned)
