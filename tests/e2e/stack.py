"""The whole production path as separate processes on 127.0.0.1, as the README's
operator guide starts it: a real `prefect server start`, the two process work
pools, `prefect --no-prompt deploy --all`, one worker per pool, the webhook
gateway under uvicorn, and a threaded HTTP receiver for Apprise's json:// posts.

Every process gets its own PREFECT_HOME, telemetry is off, and every log goes
to a file under the stack's folder (shown when a wait times out).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.loopback import Receiver, free_port, make_config
from flows.deployments import EMERGENCY_POOL, RESPONSE_QUEUE
from taskforce.gateway.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from taskforce.policy import load_policy
from tests.conftest import ROOT

WEBHOOK_SECRET = "e2e-monitoring-secret"
PY = sys.executable
STARTUP_SECONDS = 120


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60, logs: str = "") -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` (and the logs)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    # Real processes (server, workers, receiver) run on the wall clock: this polls them.
    # Domain time in these tests is never waited for; it comes from the injected clock.
    tick = threading.Event()
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:  # the thing is not there yet
            last_error, value = exc, None
        if value:
            return value
        tick.wait(0.25)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what} (last error: {last_error!r}){logs}"
    )


# --- processes ------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal the process and every child it started (its own session)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.kill_group(signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.kill_group(signal.SIGKILL)
                self.popen.wait(10)
        # A SIGTERM'd worker may leave a flow-run child behind: end the whole group.
        self.kill_group(signal.SIGKILL)


@dataclass
class Stack:
    folder: Path
    database_url: str  # the domain database
    prefect_database_url: str | None = None  # None: SQLite in the server's PREFECT_HOME
    auth_string: str | None = None  # PREFECT_SERVER_API_AUTH_STRING on the server
    gateway_workers: int = 1
    procs: list[Proc] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.receiver = Receiver()
        # A failed delivery is retried after 1 s instead of 30 s, and the emergency flow
        # re-reads its emergency every second, so the tests never wait on production pacing.
        self.config_dir = make_config(
            self.folder,
            self.receiver.url,
            {"backoff_base_seconds": 1},
        )
        self.reports_dir = self.folder / "reports"
        self.port = free_port()
        self.ui_url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.ui_url}/api"
        self.gateway_url = f"http://127.0.0.1:{free_port()}"

    # environment ---------------------------------------------------------------------

    def env(self, role: str, **extra: str) -> dict[str, str]:
        home = self.folder / "homes" / role
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(home),
            PREFECT_API_URL=self.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
            PREFECT_LOGGING_LEVEL="INFO",
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
            TASKFORCE_HOME=str(ROOT),
            TASKFORCE_CONFIG_DIR=str(self.config_dir),
            TASKFORCE_DATABASE_URL=self.database_url,
            TASKFORCE_REPORTS_DIR=str(self.reports_dir),
            TASKFORCE_OUTBOX_FILE=str(self.folder / "outbox.jsonl"),
        )
        if self.auth_string:
            env["PREFECT_API_AUTH_STRING"] = self.auth_string
        env.update(extra)
        return env

    def run(self, role: str, *args: str, timeout: float = 300, **extra: str) -> str:
        done = subprocess.run(
            [PY, *args],
            cwd=ROOT,
            env=self.env(role, **extra),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def spawn(self, role: str, *args: str, **extra: str) -> Proc:
        log = self.folder / f"{role}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [PY, *args],
                cwd=ROOT,
                env=self.env(role, **extra),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill it with its flow runs
            )
        proc = Proc(role, popen, log)
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "".join(f"\n--- {p.name} ---\n{p.tail()}" for p in self.procs)

    # the path of the operator guide -----------------------------------------------------

    def start(self) -> Stack:
        # A deployment's concurrency slot is a lease; a run whose release the server failed
        # to write (SQLite's "database is locked" under load, seen in a full run beside an
        # operator trial) holds it until the lease ends, 300 s by default: the sweep started
        # next (concurrency 1) waited past the test's 120 s. 90 s bounds that and still
        # covers a flow-run process's start under load (the run then renews it itself).
        server_env: dict[str, str] = {
            "PREFECT_SERVER_CONCURRENCY_INITIAL_DEPLOYMENT_LEASE_DURATION": "90",
        }
        if self.prefect_database_url:
            server_env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = self.prefect_database_url
        if self.auth_string:
            server_env["PREFECT_SERVER_API_AUTH_STRING"] = self.auth_string
        self.server = self.spawn(
            "prefect-server",
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            **server_env,
        )
        self.run("taskforce-init", "-m", "taskforce", "init")  # while the server starts
        wait_for("the Prefect server", self._healthy, STARTUP_SECONDS, self.logs())
        pools = [
            self.spawn(
                f"pool-{pool}", "-m", "prefect", "work-pool", "create", pool, "--type", "process"
            )
            for pool in ("taskforce", "taskforce-emergency")
        ]
        for proc in pools:
            assert proc.popen.wait(120) == 0, proc.tail()
            self.procs.remove(proc)
        limit = str(load_policy(self.config_dir).emergency.response_runs_at_once)
        self.run(
            "cli", "-m", "prefect", "work-queue", "create", RESPONSE_QUEUE,
            "--pool", EMERGENCY_POOL, "--limit", limit,
        )  # fmt: skip
        # Workers and the gateway start while the deployments are applied.
        self.start_worker("taskforce")
        self.start_worker("taskforce-emergency")
        self.start_gateway()
        self.run("cli", "-m", "prefect", "--no-prompt", "deploy", "--all", timeout=600)
        wait_for(
            "the gateway",
            lambda: httpx.get(f"{self.gateway_url}/healthz", timeout=5).status_code == 200,
            STARTUP_SECONDS,
            self.logs(),
        )
        return self

    def _healthy(self) -> bool:
        return httpx.get(f"{self.api_url}/health", timeout=5, auth=self._auth()).status_code == 200

    def _auth(self) -> tuple[str, str] | None:
        if not self.auth_string:
            return None
        user, password = self.auth_string.split(":", 1)
        return (user, password)

    def start_worker(self, pool: str) -> Proc:
        # Emergencies must not wait on the default 10 s poll: PREFECT_WORKER_QUERY_SECONDS=1.
        # The test polls the other pool every second too, only to stay short.
        return self.spawn(
            f"worker-{pool}",
            "-m",
            "prefect",
            "worker",
            "start",
            "--pool",
            pool,
            "--name",
            f"{pool}-{len(self.procs)}",
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_WORKER_PREFETCH_SECONDS="1",
        )

    def start_gateway(self) -> None:
        # The operator guide's command; each uvicorn worker process builds its own app.
        self.gateway = self.spawn(
            "gateway",
            "-m",
            "taskforce",
            "gateway",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            self.gateway_url.rsplit(":", 1)[1],
            "--workers",
            str(self.gateway_workers),
            TASKFORCE_WEBHOOK_SECRET_MONITORING=WEBHOOK_SECRET,
        )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.receiver.stop()

    # talking to it ---------------------------------------------------------------------

    def client(self):
        """A Prefect client on this server (the test process's settings are the harness's)."""
        from prefect.client.orchestration import SyncPrefectClient

        return SyncPrefectClient(self.api_url, auth_string=self.auth_string)

    def run_deployment(
        self, name: str, parameters: dict | None = None, key: str | None = None
    ) -> str:
        with self.client() as client:
            deployment = client.read_deployment_by_name(name)
            run = client.create_flow_run_from_deployment(
                deployment.id, parameters=parameters or {}, idempotency_key=key
            )
        return str(run.id)

    def wait_final(self, flow_run_id: str, timeout: float = 120):
        def final():
            with self.client() as client:
                run = client.read_flow_run(flow_run_id)
            return run if run.state and run.state.is_final() else None

        return wait_for(f"flow run {flow_run_id} to end", final, timeout, self.logs())

    def signed_post(self, path: str, payload: dict) -> httpx.Response:
        body = json.dumps(payload).encode()
        ts = str(int(time.time()))
        return httpx.post(
            f"{self.gateway_url}{path}",
            content=body,
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: ts,
                SIGNATURE_HEADER: sign(WEBHOOK_SECRET, ts, body),
            },
            timeout=60,
        )
