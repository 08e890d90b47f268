"""The gateway's intake written and paged by a child process (gateway.intake_process):
every 202 committed, duplicates collapsed, pages and flow runs from the child, refusals
with their field, nothing lost when the child is killed, and the paging hold's rule."""

from __future__ import annotations

import os
import pickle
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from benchmarks.loopback import Receiver, make_config
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency import service
from taskforce.emergency.dispatch import dispatch_pending
from taskforce.emergency.models import Emergency, EmergencyEvent, EmergencyStatus
from taskforce.errors import DomainError, IllegalTransition, NotFound
from taskforce.gateway.app import create_app
from taskforce.gateway.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from taskforce.gateway.intake_process import HeldPaging, IntakeProcessError, _answer, _outcome
from taskforce.trail import verify
from tests.gateway.server import ENV, SECRET, TOKEN, Gateway

pytestmark = pytest.mark.slow  # a uvicorn server and a forked writer per test


@pytest.fixture
def ctx(policy, clock):
    return Context(policy=policy, clock=clock)


@pytest.fixture
def receiver(tmp_path, monkeypatch):
    # Set before the child is forked: it loads the channels from this config.
    r = Receiver()
    monkeypatch.setenv("TASKFORCE_CONFIG_DIR", str(make_config(tmp_path, r.url, {})))
    yield r
    r.stop()


def _gateway(engine, ctx) -> Gateway:
    app = create_app(
        ctx_factory=lambda: ctx,
        dispatcher=lambda public_id: f"run-{public_id}",
        engine=engine,
        environ=ENV,
        background_dispatch=True,
        intake_process=True,
    )
    return Gateway(app)


def _send(url: str, ctx: Context, key: str, level: str = "III") -> httpx.Response:
    body = f'{{"dedup_key": "{key}", "level": "{level}", "title": "泵站告警 {key}"}}'.encode()
    timestamp = int(ctx.now().timestamp())
    with httpx.Client(base_url=url, timeout=60) as client:
        return client.post(
            "/v1/emergencies/monitoring",
            content=body,
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(SECRET, timestamp, body),
            },
        )


def _emergencies(engine, prefix: str) -> list[Emergency]:
    with unit_of_work(engine) as s:
        rows = s.scalars(select(Emergency).where(Emergency.dedup_key.like(f"{prefix}%"))).all()
        s.expunge_all()
        return list(rows)


def test_a_burst_is_committed_by_the_child_paged_and_dispatched(engine, ctx, receiver):
    gateway = _gateway(engine, ctx)
    keys = [f"burst-{n}" for n in range(30)] + [f"burst-{n}" for n in range(0, 30, 3)]
    try:
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda k: _send(gateway.url, ctx, k), keys))
        writer = gateway.app.state.intake_process
        assert writer.pid is not None and writer.pid != os.getpid()
        # Ctrl-C or a service manager's SIGTERM reaches the process group: the child stays
        # until the server closes the pipe (below), so it pages what it holds first.
        child = writer.pid
        os.kill(child, signal.SIGINT)
        os.kill(child, signal.SIGTERM)
        after = _send(gateway.url, ctx, "burst-after-signals")
        assert after.status_code == 202 and after.json()["created"], after.text
        assert writer.pid == child and writer._process.is_alive()
        created_after = after.json()["emergency_id"]
        # Alertmanager's alerts go through the child too (its refusals are checked first,
        # in the server process: tests/gateway/test_cli.py).
        alert = {"status": "firing", "labels": {"severity": "warning"}, "fingerprint": "am-1"}
        hook = {"version": "4", "status": "firing", "alerts": [alert]}
        am = httpx.post(
            f"{gateway.url}/v1/alertmanager",
            json=hook,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        )
        assert am.status_code == 202 and am.json()["results"][0]["outcome"] == "opened", am.text
    finally:
        gateway.stop()  # closes the pipe: the child pages what it held, dispatches, exits

    assert [r.status_code for r in replies] == [202] * len(keys), [r.text for r in replies]
    created = [r.json()["emergency_id"] for r in replies if r.json()["created"]]
    assert len(created) == 30 == len(set(created))
    stored = _emergencies(engine, "burst-")
    assert {e.public_id for e in stored} == {*created, created_after}
    assert sum(e.repeats for e in stored) == 10  # each duplicate attached once, exactly
    # The child paged each one once and started its flow run (the dispatcher's run id).
    assert {e.status for e in stored} == {EmergencyStatus.dispatched}
    assert {e.flow_run_id for e in stored} == {f"run-{e.public_id}" for e in stored}
    for public_id in created:
        assert receiver.deliveries(f"emergency:{public_id}:page"), public_id
    assert not writer._process.is_alive()
    (from_alertmanager,) = _emergencies(engine, "am-")
    assert from_alertmanager.status == EmergencyStatus.dispatched
    with unit_of_work(engine) as s:
        assert verify(s).ok


def test_a_killed_writer_loses_nothing_and_the_next_webhook_gets_a_new_one(engine, ctx, receiver):
    gateway = _gateway(engine, ctx)
    try:
        first = _send(gateway.url, ctx, "killed-1", level="I")
        assert first.status_code == 202, first.text
        writer = gateway.app.state.intake_process
        killed = writer.pid
        os.kill(killed, signal.SIGKILL)
        writer._process.join(30)
        assert writer._process.exitcode == -signal.SIGKILL
        # This process has sent through Apprise (its threads are busy) before the next
        # child is forked, as a test process or a long-running server may have.
        from apprise.apprise import get_shared_executor

        list(get_shared_executor().map(lambda _: threading.Event().wait(0.01), range(64)))

        again = _send(gateway.url, ctx, "killed-1", level="I")  # the sender's retry
        second = _send(gateway.url, ctx, "killed-2")
        assert again.status_code == 202 and second.status_code == 202, (again.text, second.text)
        assert writer.pid not in (None, killed)
        assert again.json()["emergency_id"] == first.json()["emergency_id"]
        assert not again.json()["created"] and second.json()["created"]
        # The new child pages at once (a copy of Apprise's pool without its threads made
        # every send wait 30 s).
        second_id = second.json()["emergency_id"]
        assert receiver.wait_first(lambda d, _p, _b: f"emergency:{second_id}:page" in d, 15)
    finally:
        gateway.stop()

    # Killed before or after paging the first: either it was paged, or it is still
    # pending and the dispatch sweep pages and dispatches it, once.
    dispatch_pending(engine, ctx, lambda public_id: f"sweep-{public_id}")
    stored = {e.dedup_key: e for e in _emergencies(engine, "killed-")}
    assert set(stored) == {"killed-1", "killed-2"} and stored["killed-1"].repeats == 1
    assert {e.status for e in stored.values()} == {EmergencyStatus.dispatched}
    with unit_of_work(engine) as s:
        assert verify(s).ok
        pages = s.scalar(
            select(func.count())
            .select_from(EmergencyEvent)
            .where(
                EmergencyEvent.emergency_id == stored["killed-1"].id,
                EmergencyEvent.kind == "page",
            )
        )
    assert pages == 1


def test_intake_in_a_process_needs_background_dispatch(engine, ctx):
    with pytest.raises(ValueError, match="intake_process needs background_dispatch"):
        create_app(ctx_factory=lambda: ctx, engine=engine, environ=ENV, intake_process=True)


@pytest.mark.parametrize("error", [DomainError, NotFound, IllegalTransition])
def test_a_refusal_crosses_the_pipe_with_its_field_and_allowed_values(error):
    refused = error("must be 1 to 200 characters", field="dedup_key", allowed="1 to 200")
    crossed = _outcome(pickle.loads(pickle.dumps(_answer(refused))))
    assert type(crossed) is error
    assert (crossed.message, crossed.field, crossed.allowed) == (
        "must be 1 to 200 characters",
        "dedup_key",
        "1 to 200",
    )
    assert str(crossed) == str(refused)


def test_a_failure_in_the_child_is_answered_as_a_failure_not_a_refusal():
    crossed = _outcome(pickle.loads(pickle.dumps(_answer(RuntimeError("disk I/O error")))))
    assert isinstance(crossed, IntakeProcessError) and not isinstance(crossed, DomainError)
    assert "RuntimeError" in str(crossed) and "disk I/O" not in str(crossed)


class _Dispatch:
    """What HeldPaging hands on (BackgroundDispatch's `submit` and `send_now`)."""

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.sent: list[int] = []

    def submit(self, public_id: str, *, actor: str) -> None:
        self.submitted.append(public_id)

    def send_now(self, ids: list[int]) -> None:
        self.sent.extend(ids)


def _opened(public_id: str, *, created: bool = True, send_now: tuple = ()):
    from taskforce.emergency.forms import OpenResult

    return OpenResult.model_construct(
        emergency_id=public_id, created=created, status="pending_dispatch", level="I",
        is_drill=False, raised_from=None, send_now=send_now,
    )  # fmt: skip


def test_held_paging_waits_for_a_pause_but_never_longer_than_the_hold():
    clock = [100.0]
    dispatch = _Dispatch()
    held = HeldPaging(dispatch, hold_seconds=5.0, now=lambda: clock[0])
    request = service.IntakeRequest(None, "monitoring", "k", "gateway:monitoring")
    assert not held  # nothing held: the child waits for the next batch without a timeout

    held.add([request, request], [_opened("E1"), DomainError("refused")])
    assert held and dispatch.submitted == []
    assert held.wait_seconds() == pytest.approx(0.05)  # a pause of 50 ms releases it
    clock[0] = 104.98
    assert held.wait_seconds() == pytest.approx(0.02)  # the hold's end comes first
    held.add([request], [_opened("E1", created=False, send_now=(7, 8))])
    assert dispatch.submitted == [] and dispatch.sent == []  # 4.98 s: still held

    clock[0] = 105.0  # 5 s after the first held emergency: released with the batch
    held.add([request], [_opened("E2")])
    assert dispatch.submitted == ["E1", "E2"] and dispatch.sent == [7, 8]
    assert not held

    held.add([request], [_opened("E3")])  # the hold starts again with the next one
    assert held and held.since == 105.0
    held.release()
    assert dispatch.submitted == ["E1", "E2", "E3"] and not held
