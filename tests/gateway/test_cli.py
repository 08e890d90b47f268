"""The documented command starts the gateway: `taskforce gateway serve`."""

from __future__ import annotations

import http.client
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
from tests.conftest import ROOT
from tests.gateway.server import SECRET, closed_port


@pytest.mark.slow
def test_taskforce_gateway_serve(engine, db_url):
    port = closed_port()
    env = {
        **os.environ,
        "TASKFORCE_DATABASE_URL": db_url,
        "TASKFORCE_WEBHOOK_SECRET_MONITORING": SECRET,
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
            "--no-dispatch",
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
        assert _answers_after_idle(port, seconds=6), "an idle connection was closed within 6 s"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(Emergency)) == 1


def _answers_after_idle(port: int, *, seconds: float) -> bool:
    """Whether a connection idle for `seconds` still serves a request (gateway.keep_alive_
    seconds; uvicorn's own default, 5 s, is httpx's: a client could send on a connection
    the server was closing, and a monitoring system would see its webhook fail)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/healthz")
        first = conn.getresponse()
        assert first.status == 200 and not first.will_close
        first.read()
        sock = conn.sock  # http.client opens a new one only when this is None
        time.sleep(seconds)
        try:
            conn.request("GET", "/healthz")
            again = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):
            return False
        return again.status == 200 and conn.sock is sock
    finally:
        conn.close()
