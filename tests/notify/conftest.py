"""Fixtures of the notification tests: a real HTTP receiver on 127.0.0.1 and channel files."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.notify.channels import ChannelSet, load_channels
from taskforce.notify.outbox import enqueue
from taskforce.policy.schema import Classification


@dataclass
class Arrival:
    path: str
    payload: dict
    headers: dict
    arrived: float  # time.monotonic() when the request came in


@dataclass
class Receiver:
    """A small threaded HTTP server recording every POST. Paths can be made slow or failing."""

    port: int = 0
    arrivals: list[Arrival] = field(default_factory=list)
    delays: dict[str, float] = field(default_factory=dict)  # path -> seconds before answering
    failing: set[str] = field(default_factory=set)  # paths answered with HTTP 500
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                with receiver._lock:
                    receiver.arrivals.append(
                        Arrival(
                            path, json.loads(raw or b"{}"), dict(self.headers), time.monotonic()
                        )
                    )
                delay = receiver.delays.get(path)
                if delay:
                    threading.Event().wait(delay)  # the slow target: a server-side delay
                self.send_response(500 if path in receiver.failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def url(self, path: str, **query: str) -> str:
        extra = "".join(f"&{k}={v}" for k, v in query.items())
        return f"json://127.0.0.1:{self.port}{path}?rto=10{extra}"

    def at(self, path: str) -> list[Arrival]:
        with self._lock:
            return [a for a in self.arrivals if a.path == path]

    def texts(self, path: str) -> list[str]:
        return [f"{a.payload.get('title')}\n{a.payload.get('message')}" for a in self.at(path)]


@pytest.fixture
def receiver():
    r = Receiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture
def make_channels(tmp_path):
    """Write an Apprise YAML from (name, clearance, url, audiences) and load it."""

    def make(*entries: tuple[str, str, str, list[str]], environ=None) -> ChannelSet:
        urls = [
            {url: {"tag": [f"channel-{name}", f"clearance-{clearance}", *audiences]}}
            for name, clearance, url, audiences in entries
        ]
        path = tmp_path / f"apprise-{len(list(tmp_path.glob('apprise-*')))}.yml"
        path.write_text(yaml.safe_dump({"version": 1, "urls": urls}), encoding="utf-8")
        return load_channels(path, environ=environ or {})

    return make


@pytest.fixture
def ctx(policy, clock):
    return Context(policy=policy, clock=clock)


def with_notifications(ctx: Context, **changes) -> Context:
    policy = ctx.policy.model_copy(
        update={"notifications": ctx.policy.notifications.model_copy(update=changes)}
    )
    return Context(policy=policy, clock=ctx.clock)


def with_locale(ctx: Context, locale: str) -> Context:
    return Context(policy=ctx.policy.model_copy(update={"locale": locale}), clock=ctx.clock)


def put(
    engine,
    ctx: Context,
    *,
    key: str,
    audiences: list[str],
    event_kind: str = "issue_reported",
    classification: Classification = Classification.internal,
    context: dict | None = None,
    is_drill: bool = False,
    priority: int = 0,
    subject_id: str = "1",
) -> list[int]:
    """Enqueue outbox rows the way every state change does; return their ids."""
    with unit_of_work(engine) as session:
        rows = enqueue(
            session,
            event_kind=event_kind,
            key=key,
            subject_type="issue",
            subject_id=subject_id,
            classification=classification,
            context=context or {"title": f"title of {key}"},
            at=ctx.now(),
            routing=ctx.policy.notifications,
            audiences=audiences,
            is_drill=is_drill,
            priority=priority,
        )
        session.flush()
        return [r.id for r in rows]


def outbox_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
