"""The native trigger's ASGI fast path (`_NativeFastPath`, outside FastAPI's middleware)
answers exactly as the FastAPI route does, a failure included, and intake under concurrency
accounts for every request.

Two gateways run side by side on one database: the app as built (fast path first) and the
same app with the fast path taken out, so its route serves the requests. Every request is
sent to both over real HTTP; status, content type, length and body must be equal (a new
emergency's id aside, which is a fresh UUID on each side).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import OperationalError
from starlette.requests import ClientDisconnect

from taskforce.db import unit_of_work
from taskforce.emergency.models import Emergency, EmergencyEvent
from taskforce.gateway.app import _NativeFastPath, create_app
from taskforce.gateway.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests.gateway.server import ENV, SECRET, Gateway

NATIVE = "/v1/emergencies/monitoring"
TRIGGER = {"dedup_key": "disk-full-db1", "level": "II", "title": "数据库磁盘将满"}


@pytest.fixture
def pair(engine, ctx):
    def app(fast: bool):
        built = create_app(
            ctx_factory=lambda: ctx,
            dispatcher=lambda public_id: f"run-{public_id}",
            engine=engine,
            environ=ENV,
        )
        if not fast:
            built.native_fast_path = None
        return built

    built_fast, built_routed = app(True), app(False)
    assert isinstance(built_fast.native_fast_path, _NativeFastPath)
    fast, routed = Gateway(built_fast), Gateway(built_routed)
    yield fast, routed
    fast.stop()
    routed.stop()


def _send(gateway: Gateway, path: str, body: bytes, headers: dict) -> httpx.Response:
    return gateway.client.post(path, content=body, headers=headers)


def _seen(response: httpx.Response) -> tuple:
    body = response.json() if response.headers.get("content-type") == "application/json" else None
    if isinstance(body, dict) and "emergency_id" in body:
        body = {**body, "emergency_id": len(body["emergency_id"])}
    return (
        response.status_code,
        response.headers.get("content-type"),
        response.headers.get("content-length"),
        body if body is not None else response.text,
    )


def _cases(now: int) -> list[tuple[str, str, bytes, dict]]:
    def signed(payload, *, secret=SECRET, timestamp=now, path=NATIVE, **headers):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return (
            path,
            body,
            {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(secret, timestamp, body),
                **headers,
            },
        )

    cases = {
        "new": signed({**TRIGGER, "dedup_key": "{side}-new"}),
        "repeat": signed({**TRIGGER, "dedup_key": "{side}-new"}),
        "drill, level I": signed(
            {**TRIGGER, "dedup_key": "{side}-drill", "level": "I", "drill": True}
        ),
        "unknown source": signed(TRIGGER, path="/v1/emergencies/nobody"),
        "content type": signed(TRIGGER, **{"Content-Type": "text/plain"}),
        "too large": signed({**TRIGGER, "description": "x" * 70_000}),
        "bad signature": signed(TRIGGER, secret="wrong"),
        "no signature": signed(TRIGGER, **{SIGNATURE_HEADER: ""}),
        "no timestamp": signed(TRIGGER, **{TIMESTAMP_HEADER: ""}),
        "bad timestamp": signed(TRIGGER, **{TIMESTAMP_HEADER: "yesterday"}),
        "stale": signed(TRIGGER, timestamp=now - 100_000),
        "malformed": signed(b'{"level": "I",'),
        "not an object": signed(b"[1, 2]"),
        "NUL": signed({**TRIGGER, "details": {"k": ["\x00"]}}),
        "missing title": signed({"dedup_key": "x", "level": "I"}),
        "unknown field": signed({**TRIGGER, "colour": "red"}),
        "unknown level": signed({**TRIGGER, "level": "IV"}),
        "unknown group": signed({**TRIGGER, "level": "III", "working_group": "wg:none"}),
        "long key": signed({**TRIGGER, "dedup_key": "k" * 201}),
    }
    return [(name, *case) for name, case in cases.items()]


def test_fast_path_answers_as_the_route(pair, ctx):
    fast, routed = pair
    for name, path, body, headers in _cases(int(ctx.now().timestamp())):
        answers = []
        for side, gateway in (("fast", fast), ("routed", routed)):
            # A side's own dedup keys (same length on both): each side opens its own.
            mine = body.replace(b"{side}", side[:4].encode())
            sent = dict(headers)
            if mine != body:  # signed again over this side's body
                sent[SIGNATURE_HEADER] = sign(SECRET, sent[TIMESTAMP_HEADER], mine)
            answers.append(_seen(_send(gateway, path, mine, sent)))
        assert answers[0] == answers[1], name


def test_a_failure_answers_500_as_the_route_does_and_reaches_the_servers_log(ctx, tmp_path):
    """Outside FastAPI, no server-error middleware answers for the fast path: it answers the
    same 500 itself, keeps the connection as the route does, and the server logs why."""
    empty = create_engine(f"sqlite:///{tmp_path / 'no-tables.db'}")  # every write fails

    def app(fast: bool):
        built = create_app(
            ctx_factory=lambda: ctx, dispatcher=lambda public_id: "", engine=empty, environ=ENV
        )
        if not fast:
            built.native_fast_path = None
        return built

    fast, routed = Gateway(app(True)), Gateway(app(False))
    logged = _Errors()  # after the servers' logging set-up, which resets uvicorn's loggers
    logging.getLogger("uvicorn.error").addHandler(logged)
    try:
        _, path, body, headers = _cases(int(ctx.now().timestamp()))[0]
        answers = [_send(g, path, body, headers) for g in (fast, routed)]
        assert [_seen(a) for a in answers] == [
            (500, "text/plain; charset=utf-8", "21", "Internal Server Error")
        ] * 2
        assert [a.headers.get("connection") for a in answers] == [None, None]
    finally:
        logging.getLogger("uvicorn.error").removeHandler(logged)
        fast.stop()
        routed.stop()
        empty.dispose()
    assert len(logged.records) == 2, [r.getMessage() for r in logged.records]
    for record in logged.records:
        assert record.getMessage().startswith("Exception in ASGI application")
        assert isinstance(record.exc_info[1], OperationalError)
        assert "no such table" in str(record.exc_info[1])


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_other_methods_and_paths_are_left_to_the_router(pair):
    fast, routed = pair
    for method, path in [
        ("GET", NATIVE),
        ("POST", "/v1/emergencies/"),
        ("POST", "/v1/emergencies/monitoring/"),
        ("POST", "/v1/emergencies/monitoring/unknown-action"),
        ("GET", "/healthz"),
    ]:
        a = fast.client.request(method, path)
        b = routed.client.request(method, path)
        assert (a.status_code, a.text) == (b.status_code, b.text), (method, path)


@pytest.mark.slow
def test_concurrent_intake_collapses_duplicates_exactly(gateway, engine, ctx):
    """32 connections, 400 signed triggers over 80 keys in random order (as the benchmark
    sends them): one emergency per key, every 202's id among them, repeats = duplicates."""
    rng = random.Random(9)
    keys = [f"conc-{rng.randrange(80)}" for _ in range(400)]
    now = str(int(ctx.now().timestamp()))

    async def fire():
        limits = httpx.Limits(max_connections=32)
        # At most 32 in flight, as 32 senders would: 400 requests queued in httpx's pool at
        # once cost the client O(n²) CPU, and it shares this process's GIL with the server.
        in_flight = asyncio.Semaphore(32)
        async with httpx.AsyncClient(base_url=gateway.url, timeout=120, limits=limits) as client:

            async def one(key: str) -> httpx.Response:
                body = json.dumps({**TRIGGER, "dedup_key": key}).encode()
                headers = {
                    "Content-Type": "application/json",
                    TIMESTAMP_HEADER: now,
                    SIGNATURE_HEADER: sign(SECRET, now, body),
                }
                async with in_flight:
                    return await client.post(NATIVE, content=body, headers=headers)

            return await asyncio.gather(*(one(k) for k in keys))

    responses = asyncio.run(fire())
    assert [r.status_code for r in responses] == [202] * len(keys)
    distinct = set(keys)
    with unit_of_work(engine) as s:
        rows = s.execute(select(Emergency.public_id, Emergency.dedup_key, Emergency.repeats)).all()
        events = s.scalar(
            select(func.count()).select_from(EmergencyEvent).where(EmergencyEvent.kind == "repeat")
        )
    assert sorted(r.dedup_key for r in rows) == sorted(distinct)
    assert {r.json()["emergency_id"] for r in responses} == {r.public_id for r in rows}
    assert sum(r.json()["created"] for r in responses) == len(distinct)
    assert sum(r.repeats for r in rows) == len(keys) - len(distinct) == events
    by_key = {r.dedup_key: r.public_id for r in rows}
    assert all(r.json()["emergency_id"] == by_key[k] for k, r in zip(keys, responses, strict=True))


def _serve(intake, send_fails_on: str | None = None):
    """`_NativeFastPath.serve` called as uvicorn calls it, with `intake` as the native
    intake; what it sent, and what it raised."""
    sent: list[dict] = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == send_fails_on:
            raise OSError("connection reset")
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": NATIVE, "headers": []}
    fast = _NativeFastPath(intake)
    try:
        asyncio.run(fast.serve(fast.source_of(scope), scope, receive, send))
    except Exception as exc:  # what uvicorn would log
        return sent, exc
    return sent, None


def test_a_sender_that_hangs_up_before_its_body_is_read_gets_nothing_and_no_traceback():
    """Nothing is written and nobody is left to answer: no 500 attempted, nothing raised for
    the server to log as "Exception in ASGI application" (a review)."""

    async def intake(source, headers, receive):
        await receive()
        raise ClientDisconnect()

    assert _serve(intake) == ([], None)


def test_a_failure_after_the_answer_started_is_raised_without_a_second_answer():
    async def intake(source, headers, receive):
        return b'{"emergency_id": "x"}'

    sent, raised = _serve(intake, send_fails_on="http.response.body")
    assert [m["type"] for m in sent] == ["http.response.start"]
    assert sent[0]["status"] == 202  # no 500 started after it
    assert isinstance(raised, OSError)
