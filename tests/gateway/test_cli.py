"""The documented command starts the gateway: `taskforce gateway serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import func, select

from taskforce.db import unit_of_work
from taskforce.emergency.models import Emergency
from taskforce.gateway.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from taskforce.gateway.cli import server_settings
from tests.conftest import ROOT
from tests.gateway.server import SECRET, closed_port


@pytest.mark.slow
@pytest.mark.timeout(60)  # a gateway that logs nothing would block the read below
@pytest.mark.parametrize("options", [["--no-dispatch"], []], ids=["no-dispatch", "dispatch"])
def test_taskforce_gateway_serve(engine, db_url, options):
    """With dispatch, the app factory imports Prefect, whose logging setup muted uvicorn's
    loggers: no startup line, access log or shutdown line. Dispatch may fail here."""
    port = closed_port()
    env = {
        **os.environ,
        "TASKFORCE_DATABASE_URL": db_url,
        "TASKFORCE_WEBHOOK_SECRET_MONITORING": SECRET,
        "PREFECT_API_URL": f"http://127.0.0.1:{closed_port()}/api",  # unreachable
        "TASKFORCE_ALERTMANAGER_TOKEN": "cli-token",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taskforce",
            "gateway",
            "serve",
            "--port",
            str(port),
            *options,
        ],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Block on the server's own log line instead of sleeping.
        for line in proc.stderr:
            if "Uvicorn running on" in line:
                assert f"127.0.0.1:{port}" in line
                break
        else:
            pytest.fail(f"the gateway exited with {proc.wait()}")
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        body = json.dumps({"dedup_key": "cli", "level": "II", "title": "CLI smoke"}).encode()
        ts = str(int(time.time()))
        r = httpx.post(
            f"{url}/v1/emergencies/monitoring",
            content=body,
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: ts,
                SIGNATURE_HEADER: sign(SECRET, ts, body),
            },
        )
        assert r.status_code == 202, r.text
        # Alertmanager reads no answer: a refused alert is a log line, with level and name.
        alert = {"status": "firing", "labels": {"severity": "apocalyptic"}, "fingerprint": "f"}
        hook = {"version": "4", "status": "firing", "alerts": [alert]}
        r = httpx.post(
            f"{url}/v1/alertmanager", json=hook, headers={"Authorization": "Bearer cli-token"}
        )
        assert r.status_code == 422, r.text
        for line in proc.stderr:
            if "alertmanager alert f refused" in line:
                assert "WARNING taskforce.gateway.app:" in line
                break
        else:
            pytest.fail("the refused alert was not logged")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(Emergency)) == 1


def test_idle_connections_outlive_what_http_clients_keep(policy):
    """uvicorn closes an idle connection after `timeout_keep_alive`; its default, 5 s, is
    httpx's own keep-alive expiry, so a client could send a webhook on a connection the
    gateway was closing. The served gateway keeps them longer (gateway.keep_alive_seconds)."""
    settings = server_settings(policy.gateway)
    assert settings["timeout_keep_alive"] == policy.gateway.keep_alive_seconds
    assert settings["timeout_keep_alive"] > httpx.Limits().keepalive_expiry
    assert server_settings(policy.gateway, host="0.0.0.0", port=9)["port"] == 9


def test_an_app_built_for_its_schema_starts_no_dispatch_thread():
    """`taskforce gateway openapi` builds the app only to print its schema: no thread, no
    Apprise import. Serving it (its lifespan, as uvicorn runs it) starts the thread."""
    import asyncio

    from taskforce.gateway.app import create_app

    app = create_app()
    assert "/v1/emergencies/{source}" in json.dumps(app.openapi())
    assert not app.state.dispatch_queue.started

    async def serve() -> bool:
        async with app.router.lifespan_context(app):
            return app.state.dispatch_queue.started

    assert asyncio.run(serve())
