"""A real gateway: uvicorn on 127.0.0.1, in a thread, on a free port (helpers and fixtures)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from taskforce.context import Context
from taskforce.gateway.app import create_app
from taskforce.gateway.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

SECRET = "s3cret-monitoring"
DRILL_SECRET = "s3cret-drill"
TOKEN = "am-token"
ROUTING_KEY = "R0UTINGKEY0000000000000000000000"
ENV = {
    "TASKFORCE_WEBHOOK_SECRET_MONITORING": SECRET,
    "TASKFORCE_WEBHOOK_SECRET_DRILL": DRILL_SECRET,
    "TASKFORCE_ALERTMANAGER_TOKEN": TOKEN,
    "TASKFORCE_PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
}


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unreachable_prefect():
    from flows.emergency import PrefectDispatcher

    return PrefectDispatcher(
        deployment="emergency-response/emergency-response",
        timeout_seconds=5,
        connect_retries=0,
        api_url=f"http://127.0.0.1:{closed_port()}/api",
    )


class Gateway:
    def __init__(self, app, keep_alive_seconds: int = 75) -> None:
        # Listening before the server thread starts: requests wait in the backlog,
        # so no test has to sleep until uvicorn is up.
        self.app = app
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="warning",
                lifespan="off",
                backlog=512,
                timeout_keep_alive=keep_alive_seconds,
            )
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()
        # What the lifespan (off here: it would freeze the test process's objects) does.
        self.app.state.dispatch_queue.close()
        if self.app.state.intake_process is not None:
            self.app.state.intake_process.close()

    def signed(
        self,
        path: str,
        payload: dict | bytes,
        *,
        secret: str = SECRET,
        timestamp: int | str,
        headers: dict | None = None,
    ) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sent = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            **(headers or {}),
        }
        return self.client.post(path, content=body, headers=sent)


@pytest.fixture
def start_gateway(engine) -> Iterator:
    started: list[Gateway] = []

    def start(ctx: Context, dispatcher=None, environ=None) -> Gateway:
        app = create_app(
            ctx_factory=lambda: ctx,
            dispatcher=dispatcher or unreachable_prefect(),
            engine=engine,
            environ=ENV if environ is None else environ,
        )
        gateway = Gateway(app, ctx.policy.gateway.keep_alive_seconds)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def ctx(policy, clock):
    return Context(policy=policy, clock=clock)


@pytest.fixture
def gateway(start_gateway, ctx) -> Gateway:
    return start_gateway(ctx)
