"""Page first, orchestrate after: the dispatcher pages an emergency's on-call before it
starts the flow run, once, whoever else tries; a crash between the intake commit and the
page still ends in one page; the page keeps the classification and the drill mark; and
it reaches a receiver while the flow run has not started."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

import taskforce.emergency.dispatch as dispatch_module
from benchmarks.loopback import Receiver, make_config
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency import service
from taskforce.emergency.dispatch import (
    BackgroundDispatch,
    dispatch,
    dispatch_pending,
    no_dispatcher,
)
from taskforce.emergency.forms import EmergencyIntake
from taskforce.emergency.models import Emergency, EmergencyEvent, EmergencyStatus, Level
from taskforce.emergency.paging import first_page, first_pages
from taskforce.notify.channels import load_channels
from taskforce.notify.delivery import deliver_pending
from taskforce.notify.models import DeliveryStatus, OutboxMessage
from taskforce.policy.schema import Classification
from taskforce.trail import verify
from taskforce.trail.models import TrailEntry

ROOT = Path(__file__).resolve().parents[2]
LEADERSHIP = [f"member-L{i}" for i in range(1, 8)]
SECRET_TITLE = "机密：某局合并方案泄露"


@pytest.fixture
def ctx(policy, clock):
    return Context(policy=policy, clock=clock)


def _open(engine, ctx, *, key="k1", level="I", **kw) -> str:
    fields = {"level": Level(level), "title": "数据平台中断", "working_group": "wg:data"}
    fields.update({k: kw.pop(k) for k in ("title", "classification", "description") if k in kw})
    with unit_of_work(engine) as s:
        return service.open_emergency(
            s,
            ctx,
            EmergencyIntake(**fields),
            source="monitoring",
            dedup_key=key,
            actor="test",
            **kw,
        ).emergency_id


def _pages(engine, public_id) -> tuple[int, list[str], int]:
    """(page events, page outbox audiences, `emergency.paged` trail entries)."""
    with unit_of_work(engine) as s:
        emergency_id = s.scalar(select(Emergency.id).where(Emergency.public_id == public_id))
        events = s.scalar(
            select(func.count())
            .select_from(EmergencyEvent)
            .where(EmergencyEvent.emergency_id == emergency_id, EmergencyEvent.kind == "page")
        )
        audiences = s.scalars(
            select(OutboxMessage.audience)
            .where(
                OutboxMessage.subject_id == public_id,
                OutboxMessage.event_kind == "emergency_page",
            )
            .order_by(OutboxMessage.audience)
        ).all()
        trail = s.scalar(
            select(func.count())
            .select_from(TrailEntry)
            .where(TrailEntry.subject_id == public_id, TrailEntry.action == "emergency.paged")
        )
    return events, list(audiences), trail


def _state(engine, ctx, public_id):
    with unit_of_work(engine) as s:
        return service.state(s, public_id)


def _flow_paging_step(engine, ctx, public_id):
    """What tasks.emergency.page_on_call (the flow's paging step) does, without Prefect."""
    with unit_of_work(engine) as s:
        return first_page(s, ctx, public_id, actor="flow:emergency-response", reason="flow")


def test_the_page_is_written_before_the_flow_run_is_started(engine, ctx):
    public_id = _open(engine, ctx)
    seen = {}

    def dispatcher(pid: str) -> str:
        seen["pages"] = _pages(engine, pid)  # what the flow run would find when it starts
        seen["status"] = _state(engine, ctx, pid).status
        return "run-1"

    outcome = dispatch(engine, ctx, public_id, dispatcher, actor="gateway:monitoring")

    assert outcome.dispatched and outcome.flow_run_id == "run-1"
    assert sorted(outcome.paged) == sorted(code.removeprefix("member-") for code in LEADERSHIP)
    assert seen["pages"] == (1, LEADERSHIP, 1)
    assert seen["status"] == EmergencyStatus.pending_dispatch  # until the run is recorded
    assert _state(engine, ctx, public_id).status == EmergencyStatus.dispatched


def test_paged_once_when_the_gateway_thread_and_the_flow_both_page(engine, ctx):
    """The flow's paging step runs inside the dispatcher (the run starts at once), and again
    afterwards (a rerun): the page the gateway thread wrote is the only one."""
    public_id = _open(engine, ctx)

    def flow_starts_and_pages(pid: str) -> str:
        assert _flow_paging_step(engine, ctx, pid) is None
        return "run-1"

    dispatch(engine, ctx, public_id, flow_starts_and_pages, actor="gateway:monitoring")
    assert _flow_paging_step(engine, ctx, public_id) is None
    assert dispatch_pending(engine, ctx, flow_starts_and_pages) == []  # dispatched: nothing left

    assert _pages(engine, public_id) == (1, LEADERSHIP, 1)
    with unit_of_work(engine) as s:
        assert verify(s).ok


def test_paged_once_when_the_gateway_thread_and_the_flow_page_at_the_same_time(engine, ctx):
    """Both first pages race in their own transactions; the row lock (PostgreSQL) or the
    write lock (SQLite) lets one through, and the other then finds the emergency paged."""
    public_ids = [_open(engine, ctx, key=f"race-{i}") for i in range(6)]
    results: dict[str, list] = {p: [] for p in public_ids}

    def page_all(who: str) -> None:
        for pid in public_ids:
            with unit_of_work(engine) as s:
                results[pid].append(first_page(s, ctx, pid, actor=who, reason="race"))

    threads = [
        threading.Thread(target=page_all, args=(who,))
        for who in ("gateway:monitoring", "flow:emergency-response", "dispatch-sweep")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    for pid in public_ids:
        assert sum(r is not None for r in results[pid]) == 1
        assert _pages(engine, pid) == (1, LEADERSHIP, 1)


def test_prefect_down_pages_once_records_the_failure_once_and_stays_pending(engine, ctx):
    public_id = _open(engine, ctx, level="II")

    first = dispatch(engine, ctx, public_id, no_dispatcher, actor="gateway:monitoring")
    again = dispatch_pending(engine, ctx, no_dispatcher)

    assert not first.dispatched and first.paged == ("E1", "E2")
    assert [(o.dispatched, o.paged) for o in again] == [(False, ())]
    assert _state(engine, ctx, public_id).status == EmergencyStatus.pending_dispatch
    assert _pages(engine, public_id) == (1, ["member-E1", "member-E2"], 1)
    with unit_of_work(engine) as s:
        failures = s.scalars(
            select(TrailEntry.payload).where(TrailEntry.action == "emergency.dispatch_failed")
        ).all()
    assert len(failures) == 1
    payload = failures[0] if isinstance(failures[0], dict) else json.loads(failures[0])
    assert payload["paged"] is True
    (back,) = dispatch_pending(engine, ctx, lambda pid: "run-9")
    assert back.dispatched and back.paged == ()
    assert _state(engine, ctx, public_id).status == EmergencyStatus.dispatched


def test_an_acknowledged_or_resolved_emergency_is_not_paged_by_a_late_dispatch(engine, ctx):
    public_id = _open(engine, ctx)
    with unit_of_work(engine) as s:
        service.acknowledge(s, ctx, public_id, actor="L1")

    outcome = dispatch(engine, ctx, public_id, lambda pid: "run-1", actor="dispatch-sweep")

    assert outcome.dispatched and outcome.paged == ()
    assert _pages(engine, public_id) == (0, [], 0)


def _channels(tmp_path, receiver_url: str):
    """Every member's phone on two channels: one cleared for secret content, one not."""
    members = [f"member-{c}" for c in ("L1", "L2", "L3", "L4", "L5", "L6", "L7", "E1", "E2")]
    urls = [
        {
            f"json://{receiver_url.removeprefix('http://')}/secure": {
                "tag": ["channel-secure-im", "clearance-secret", *members]
            }
        },
        {
            f"json://{receiver_url.removeprefix('http://')}/sms": {
                "tag": ["channel-sms", "clearance-internal", *members]
            }
        },
    ]
    path = tmp_path / "apprise.yml"
    path.write_text(yaml.safe_dump({"version": 1, "urls": urls}), encoding="utf-8")
    return load_channels(path, environ={})


def _texts(receiver: Receiver, path: str) -> list[str]:
    return [
        f"{m.body.get('title')}\n{m.body.get('message')}"
        for m in list(receiver.messages)
        if m.path == path
    ]


def test_the_direct_page_keeps_the_classification_and_the_drill_mark(engine, ctx, tmp_path):
    """Sent from the gateway's thread: a secret emergency's title and summary reach the
    cleared channel only; the uncleared one gets a reference. A drill says so."""
    receiver = Receiver()
    try:
        channels = _channels(tmp_path, receiver.url)
        secret = _open(
            engine,
            ctx,
            key="secret",
            title=SECRET_TITLE,
            description="预算 12,000,000 元",
            classification=Classification.secret,
        )
        drill = _open(engine, ctx, key="drill", level="II", is_drill=True)
        background = BackgroundDispatch(
            engine, lambda: ctx, lambda pid: f"run-{pid}", channels=channels
        )
        background.submit(secret, actor="gateway:monitoring")
        background.submit(drill, actor="gateway:drill")
        background.close(timeout=120)
    finally:
        receiver.stop()

    secure, sms = _texts(receiver, "/secure"), _texts(receiver, "/sms")
    assert len(secure) == len(sms) == 7 + 2  # seven leaders, two executive members
    assert sum(SECRET_TITLE in t and "12,000,000" in t for t in secure) == 7
    for leaked in (SECRET_TITLE, "合并", "12,000,000"):
        assert not any(leaked in t for t in sms)
    with unit_of_work(engine) as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.event_kind == "emergency_page"))
        by_subject = {}
        for row in rows:
            by_subject.setdefault(row.subject_id, []).append(row)
    assert all(r.is_drill for r in by_subject[drill]) and len(by_subject[drill]) == 2
    assert not any(r.is_drill for r in by_subject[secret])
    assert all(r.classification == Classification.secret for r in by_subject[secret])
    assert all(r.status == DeliveryStatus.delivered for rows in by_subject.values() for r in rows)
    drill_titles = [t.split("\n")[0] for t in secure + sms if drill in t]
    assert len(drill_titles) == 4 and all(t.startswith("[演练]") for t in drill_titles)
    for public_id in (secret, drill):
        assert _state(engine, ctx, public_id).status == EmergencyStatus.dispatched


@pytest.mark.slow
@pytest.mark.parametrize("point", ["before-page", "after-page"])
def test_a_crash_between_the_intake_commit_and_the_page_still_pages_once(
    engine, db_url, ctx, tmp_path, point
):
    """The gateway process dies in its dispatch thread around the page's commit. The
    dispatch sweep pages what was not paged and starts the run; a page written but not
    sent goes out with the next delivery run; nobody is paged twice."""
    key = f"crash-{point}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("crash_dispatch.py")), db_url, point, key],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    public_id = killed.stdout.split()[0]
    assert _state(engine, ctx, public_id).status == EmergencyStatus.pending_dispatch
    if point == "before-page":
        assert _pages(engine, public_id) == (0, [], 0)
    else:
        assert _pages(engine, public_id) == (1, LEADERSHIP, 1)

    receiver = Receiver()
    try:
        channels = _channels(tmp_path, receiver.url)
        (outcome,) = dispatch_pending(engine, ctx, lambda pid: "run-after-crash")
        if point == "after-page":
            assert outcome.paged == ()
            deliver_pending(engine, ctx, channels=channels)  # the every-minute delivery run
        else:
            assert len(outcome.paged) == 7
        assert outcome.dispatched
        # The first page was sent through the default config here; send what is due now.
        deliver_pending(engine, ctx, channels=channels)
        assert _flow_paging_step(engine, ctx, public_id) is None  # the run pages nobody
    finally:
        receiver.stop()

    assert _pages(engine, public_id) == (1, LEADERSHIP, 1)
    assert _state(engine, ctx, public_id).status == EmergencyStatus.dispatched
    with unit_of_work(engine) as s:
        statuses = s.scalars(
            select(OutboxMessage.status).where(OutboxMessage.event_kind == "emergency_page")
        ).all()
        assert verify(s).ok
    assert len(statuses) == 7


@pytest.mark.slow
def test_the_page_reaches_the_receiver_before_the_flow_run_starts(
    engine, ctx, tmp_path, monkeypatch
):
    """A real gateway (uvicorn on 127.0.0.1, background dispatch) with a dispatcher that
    holds the flow run back: the page arrives all the same, then the run is started."""
    from taskforce.gateway.app import create_app
    from tests.gateway.server import ENV, Gateway

    receiver = Receiver()
    monkeypatch.setenv("TASKFORCE_CONFIG_DIR", str(make_config(tmp_path, receiver.url, {})))
    release, asked, called = threading.Event(), threading.Event(), []

    def held_dispatcher(public_id: str) -> str:
        called.append(time.perf_counter())
        asked.set()
        release.wait(120)  # the flow run "starts" only when the test says so
        return f"run-{public_id}"

    app = create_app(
        ctx_factory=lambda: ctx,
        dispatcher=held_dispatcher,
        engine=engine,
        environ=ENV,
        background_dispatch=True,
    )
    gateway = Gateway(app)
    try:
        sent = time.perf_counter()
        reply = gateway.signed(
            "/v1/emergencies/monitoring",
            {"dedup_key": "held", "level": "I", "title": "全市政务平台中断"},
            timestamp=int(ctx.now().timestamp()),
        )
        assert reply.status_code == 202, reply.text
        body = reply.json()
        assert body["status"] == "pending_dispatch" and not body["dispatched"]
        public_id = body["emergency_id"]
        arrived = receiver.wait_first(
            lambda d, _p, _b: d.startswith(f"emergency:{public_id}:page"), 120
        )
        assert arrived is not None and arrived > sent
        # Every leader's page is out while the flow run is still held back.
        for member in LEADERSHIP:
            assert receiver.wait_first(lambda d, _p, _b, m=member: m in d, 120) is not None
        assert len(receiver.deliveries(f"emergency:{public_id}:page")) == 7
        assert not release.is_set() and _state(engine, ctx, public_id).flow_run_id is None
        assert asked.wait(120) and called[0] >= arrived  # the run was asked for after the page
    finally:
        release.set()
        gateway.stop()
        receiver.stop()
        asyncio.run(_shut_down(app))  # the app's shutdown drains its dispatch thread
    assert _state(engine, ctx, public_id).status == EmergencyStatus.dispatched
    assert _pages(engine, public_id) == (1, LEADERSHIP, 1)


async def _shut_down(app) -> None:
    async with app.router.lifespan_context(app):
        pass


# --- the gateway thread's set-based first pages give what one-by-one first pages give ---

_runs = itertools.count()
scene = st.lists(
    st.fixed_dictionaries(
        {
            "level": st.sampled_from(list(Level)),
            "classification": st.sampled_from(list(Classification)),
            "drill": st.booleans(),
            "before": st.sampled_from(
                ["fresh", "fresh", "paged", "acknowledged", "resolved", "deadline_recorded"]
            ),
            "repeat": st.booleans(),  # the id twice in the batch
        }
    ),
    min_size=1,
    max_size=6,
)


def _stage(engine, ctx, run: str, items: list[dict]) -> list[str]:
    ids = []
    for n, item in enumerate(items):
        public_id = _open(
            engine,
            ctx,
            key=f"{run}-{n}",
            level=item["level"].value,
            title=f"告警 {n}",
            description=f"描述 {n} " * 40,
            classification=item["classification"],
            is_drill=item["drill"],
        )
        with unit_of_work(engine) as s:
            before = item["before"]
            if before == "paged":
                service.page_if_unpaged(s, ctx, public_id, actor="earlier", reason="earlier")
            elif before == "acknowledged":
                service.acknowledge(s, ctx, public_id, actor="L1")
            elif before == "resolved":
                service.resolve(s, ctx, public_id, actor="L1")
            elif before == "deadline_recorded" and item["level"] == Level.I:
                service.record_deadline_met(
                    s, ctx, public_id, "report_to_leadership", actor="op", note="phoned"
                )
        ids.append(public_id)
    return ids


def _written(engine, ids: list[str], run: str) -> list:
    """Everything the pages wrote, per emergency, with its id and the run's dedup-key
    prefix replaced."""
    names = {public_id: f"E{n}" for n, public_id in enumerate(ids)} | {f"{run}-": "RUN-"}

    def renamed(value) -> str:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        for public_id, name in names.items():
            text = text.replace(public_id, name)
        return text

    out = []
    with unit_of_work(engine) as s:
        for public_id in ids:
            e = s.scalar(select(Emergency).where(Emergency.public_id == public_id))
            rows = s.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.subject_id == public_id)
                # Written when it opened, not by its pages (and keyed by its trail entry's id).
                .where(OutboxMessage.event_kind != "emergency_tracked")
                .order_by(OutboxMessage.idempotency_key)
            ).all()
            trail = s.scalars(
                select(TrailEntry).where(TrailEntry.subject_id == public_id).order_by(TrailEntry.id)
            ).all()
            events = s.scalars(
                select(EmergencyEvent)
                .where(EmergencyEvent.emergency_id == e.id)
                .order_by(EmergencyEvent.id)
            ).all()
            out.append(
                (
                    e.status,
                    e.pages_at_step,
                    e.next_escalation_at,
                    [
                        (
                            renamed(r.idempotency_key),
                            r.event_kind,
                            r.audience,
                            r.classification,
                            renamed(r.context),
                            r.is_drill,
                            r.priority,
                            r.status,
                            r.trail_entry_id is not None,
                        )
                        for r in rows
                    ],
                    [
                        (
                            t.action,
                            t.actor,
                            renamed(t.payload),
                            t.classification,
                            t.calendar_fallback,
                        )
                        for t in trail
                    ],
                    [(v.kind, v.actor, renamed(v.detail)) for v in events],
                )
            )
        assert verify(s).ok
    return out


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(items=scene)
def test_first_pages_equals_first_page_one_by_one(engine, ctx, items):
    run = next(_runs)
    one = _stage(engine, ctx, f"one-{run}", items)
    many = _stage(engine, ctx, f"many-{run}", items)
    batch = [p for p, item in zip(many, items, strict=True) for _ in range(1 + item["repeat"])]

    expected = {}
    for public_id in one:
        with unit_of_work(engine) as s:
            first = first_page(s, ctx, public_id, actor="gateway:monitoring", reason="opened")
        if first is not None:
            expected[one.index(public_id)] = first.members
    with unit_of_work(engine) as s:
        got = first_pages(s, ctx, batch, actor="gateway:monitoring", reason="opened")

    assert {many.index(p): f.members for p, f in got.items()} == expected
    written_many = _written(engine, many, f"many-{run}")
    written_one = _written(engine, one, f"one-{run}")
    for n, (got_e, want_e) in enumerate(zip(written_many, written_one, strict=True)):
        for part, (got_part, want_part) in enumerate(zip(got_e, want_e, strict=True)):
            assert got_part == want_part, (n, part)


@pytest.mark.slow
def test_without_background_dispatch_the_request_pages_then_starts_the_run(
    engine, ctx, tmp_path, monkeypatch
):
    """`create_app(background_dispatch=False)` (tests, in-process use): the request itself
    pages, sends the page, starts the run, and answers what it did."""
    from taskforce.gateway.app import create_app
    from tests.gateway.server import ENV, Gateway

    receiver = Receiver()
    monkeypatch.setenv("TASKFORCE_CONFIG_DIR", str(make_config(tmp_path, receiver.url, {})))
    seen = {}

    def dispatcher(public_id: str) -> str:
        seen["pages"] = _pages(engine, public_id)
        return f"run-{public_id}"

    app = create_app(ctx_factory=lambda: ctx, dispatcher=dispatcher, engine=engine, environ=ENV)
    gateway = Gateway(app)
    try:
        reply = gateway.signed(
            "/v1/emergencies/monitoring",
            {"dedup_key": "in-request", "level": "II", "title": "审批系统故障"},
            timestamp=int(ctx.now().timestamp()),
        )
        answered = time.perf_counter()
        assert reply.status_code == 202, reply.text
        body = reply.json()
        public_id = body["emergency_id"]
        assert body["status"] == "dispatched" and body["dispatched"]
        assert seen["pages"] == (1, ["member-E1", "member-E2"], 1)
        pages = receiver.deliveries(f"emergency:{public_id}:page")
        assert len(pages) == 2 and all(p.at < answered for p in pages)
    finally:
        gateway.stop()
        receiver.stop()


def test_the_dispatch_queue_answers_each_emergencys_outcome(engine, ctx, tmp_path):
    """`submit` returns a future with the emergency's own outcome: started, or the error
    of its failed start (the sweep retries it); never an exception."""
    ok, refused = _open(engine, ctx, key="ok", level="II"), _open(engine, ctx, key="no", level="II")

    def dispatcher(public_id: str) -> str:
        if public_id == refused:
            raise ConnectionError("Prefect is down")
        return f"run-{public_id}"

    queue = BackgroundDispatch(engine, lambda: ctx, dispatcher, channels=load_channels())
    try:
        started, failed = (
            queue.submit(ok, actor="t").result(60),
            queue.submit(refused, actor="t").result(60),
        )
    finally:
        queue.close()
    assert (started.public_id, started.dispatched, started.flow_run_id) == (ok, True, f"run-{ok}")
    assert (failed.public_id, failed.dispatched) == (refused, False)
    assert failed.error == "ConnectionError: Prefect is down"
    assert _state(engine, ctx, ok).status == EmergencyStatus.dispatched
    assert _state(engine, ctx, refused).status == EmergencyStatus.pending_dispatch


def test_a_dispatch_batch_that_fails_answers_failed_outcomes(engine, ctx):
    """A batch that cannot run at all (here: no context) fails its futures' outcomes, not
    their callers: the rows stay pending_dispatch for the sweep."""
    public_id = _open(engine, ctx, key="k", level="II")

    def no_context() -> Context:
        raise RuntimeError("config/ unreadable")

    queue = BackgroundDispatch(
        engine, no_context, lambda pid: f"run-{pid}", channels=load_channels()
    )
    try:
        outcome = queue.submit(public_id, actor="t").result(60)
    finally:
        queue.close()
    assert not outcome.dispatched and outcome.error == "RuntimeError: config/ unreadable"
    assert _state(engine, ctx, public_id).status == EmergencyStatus.pending_dispatch


@pytest.mark.slow
def test_without_background_dispatch_a_burst_is_dispatched_by_one_thread(engine, ctx):
    """Twenty new emergencies at once, answered with their own runs: every page and start
    happens on the one dispatch thread, not on a request thread of its own each."""
    from taskforce.gateway.app import create_app
    from taskforce.gateway.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
    from tests.gateway.server import ENV, SECRET, Gateway

    threads: set[str] = set()

    def dispatcher(public_id: str) -> str:
        threads.add(threading.current_thread().name)
        return f"run-{public_id}"

    app = create_app(ctx_factory=lambda: ctx, dispatcher=dispatcher, engine=engine, environ=ENV)
    gateway = Gateway(app)
    now = str(int(ctx.now().timestamp()))

    async def fire():
        import httpx

        async with httpx.AsyncClient(base_url=gateway.url, timeout=120) as client:

            async def one(n: int):
                body = json.dumps({"dedup_key": f"burst-{n}", "level": "II", "title": "中断"})
                headers = {
                    "Content-Type": "application/json",
                    TIMESTAMP_HEADER: now,
                    SIGNATURE_HEADER: sign(SECRET, now, body.encode()),
                }
                return await client.post(
                    "/v1/emergencies/monitoring", content=body, headers=headers
                )

            return await asyncio.gather(*(one(n) for n in range(20)))

    try:
        replies = asyncio.run(fire())
    finally:
        gateway.stop()
    bodies = [r.json() for r in replies]
    assert [r.status_code for r in replies] == [202] * 20
    assert all(b["created"] and b["dispatched"] and b["status"] == "dispatched" for b in bodies)
    assert len({b["emergency_id"] for b in bodies}) == 20
    assert threads == {"emergency-dispatch"}
    for b in bodies:
        assert _state(engine, ctx, b["emergency_id"]).flow_run_id == f"run-{b['emergency_id']}"


def test_a_caller_that_stops_waiting_neither_stops_its_dispatch_nor_the_thread(engine, ctx):
    """A cancelled future (its request cancelled) still has its emergency dispatched, and the
    dispatch thread goes on answering the others."""
    first, second = _open(engine, ctx, key="a", level="II"), _open(engine, ctx, key="b", level="II")
    release = threading.Event()

    def dispatcher(public_id: str) -> str:
        release.wait(30)
        return f"run-{public_id}"

    queue = BackgroundDispatch(engine, lambda: ctx, dispatcher, channels=load_channels())
    try:
        abandoned = queue.submit(first, actor="t")
        assert abandoned.cancel()
        release.set()
        answered = queue.submit(second, actor="t").result(60)
    finally:
        queue.close()
    assert answered.dispatched and answered.flow_run_id == f"run-{second}"
    assert _state(engine, ctx, first).flow_run_id == f"run-{first}"


def test_a_new_emergency_is_paged_between_a_burst_s_run_starts(engine, ctx, monkeypatch):
    """The dispatch thread pages a burst, then starts its flow runs: one after another, at
    2.3 s each on a loaded Prefect (a storm trial), and an emergency arriving meanwhile
    waited for all of them before its first page (120 of 200 pages, 3 minutes late). It
    now looks at its queue between slices of run starts (here one run per slice)."""
    monkeypatch.setattr(dispatch_module, "RUN_START_SLICE_SECONDS", 0)
    burst = [_open(engine, ctx, key=f"burst-{n}", level="II") for n in range(4)]
    late = _open(engine, ctx, key="late", level="II")
    started: list[str] = []

    def dispatcher(public_id: str) -> str:
        if not started:  # the late emergency arrives while the burst's first run starts
            queue.submit(late, actor="t")
        started.append(public_id)
        return f"run-{public_id}"

    queue = BackgroundDispatch(engine, lambda: ctx, dispatcher, channels=load_channels())
    try:
        futures = [queue.submit(public_id, actor="t") for public_id in burst]
        outcomes = [f.result(60) for f in futures]
    finally:
        queue.close()
    assert all(o.dispatched for o in outcomes) and sorted(started) == sorted([*burst, late])
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(TrailEntry.action, TrailEntry.subject_id)
            .where(TrailEntry.action.in_(["emergency.paged", "emergency.dispatched"]))
            .order_by(TrailEntry.id)
        ).all()
    events = [(action.removeprefix("emergency."), subject) for action, subject in rows]
    late_paged = events.index(("paged", late))
    dispatched_burst = [
        i for i, (a, pid) in enumerate(events) if a == "dispatched" and pid in burst
    ]
    # Paged after the first run start was recorded, before the burst's last one.
    assert dispatched_burst[0] < late_paged < dispatched_burst[-1]
