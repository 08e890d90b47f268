"""Emergency path: signed webhook → first page received by a loopback receiver.

The production path on 127.0.0.1, one emergency at a time:

* a Prefect server (`prefect_test_harness`, or the one already configured);
* the `emergency-response` flow served by a `Runner` (`flow.serve`'s machinery) in a
  thread of this process, polling every `POLL_SECONDS`; each flow run executes in a
  child process the runner starts (that is how served and worker-run deployments run);
* the gateway as `taskforce gateway serve` runs it (uvicorn, `create_production_app`:
  commit, 202, then a background thread pages on-call and starts the flow run through
  the Prefect API; with gateway.intake_process, the commit and that thread are in the
  gateway's child process, which pages once webhooks pause for 50 ms);
* a loopback HTTP receiver as the only Apprise target (json://), every audience.

A run is timed from just before the webhook is sent to the arrival of its first page at
the receiver. The page comes from the gateway's dispatch thread (`BackgroundDispatch`, in
its intake process):
right after the intake commit it writes the page (outbox rows + trail entry, one
transaction) and sends it through Apprise, and only then starts the flow run; its
paging step finds the emergency paged
(the figure fails if any page was written by someone else). So the flow run's start —
a new Python process per run in Prefect 3.9, seconds on a small machine — is no longer
on this path; the baseline still measures it: an empty flow run started the same way,
a run of a served deployment created through the Prefect API with the same dispatcher
class the gateway uses, whose body only posts its id to the same receiver. Our overhead
is ours − baseline (negative now: the page does not wait for a run to start).

After its page, each emergency is acknowledged and resolved through the webhook, and the
next one starts once its run has ended, so runs do not pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid

import httpx
from prefect import flow

from benchmarks.core import Bench, Result
from benchmarks.loopback import ROOT, Receiver, free_port, make_config
from taskforce.gateway.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

NAME = "emergency_path"
EMERGENCIES = 50
POLL_SECONDS = 1  # the runner's poll of the Prefect API for scheduled runs
GOAL_P95_SECONDS = 2.0
GOAL_OVERHEAD_SECONDS = 0.5
SECRET = "bench-emergency-secret"
RECEIVER_ENV = "TASKFORCE_BENCH_RECEIVER_URL"
EMPTY_DEPLOYMENT = "bench-empty-page/bench-empty-page"
TIMEOUT_SECONDS = 120


@flow(name="bench-empty-page")
def empty_page(emergency_id: str) -> None:
    """The baseline's flow body: tell the receiver it started, nothing else."""
    httpx.post(
        os.environ[RECEIVER_ENV] + "/empty",
        json={"emergency_id": emergency_id},
        headers={"X-Taskforce-Delivery": f"empty:{emergency_id}"},
        timeout=10,
    )


def _serve(ready: threading.Event, handle: dict) -> None:
    from prefect.runner import Runner

    from flows.emergency import emergency_response

    runner = Runner(query_seconds=POLL_SECONDS, pause_on_shutdown=False, limit=4)
    runner.add_deployment(emergency_response.to_deployment("emergency-response"))
    runner.add_deployment(empty_page.to_deployment("bench-empty-page"))
    loop = asyncio.new_event_loop()
    handle["runner"], handle["loop"] = runner, loop
    ready.set()
    loop.run_until_complete(runner.start())


class _Gateway:
    def __init__(self, bench: Bench, env: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = bench.workdir / "emergency-gateway.log"
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "taskforce.gateway.asgi:create_production_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    self.url.rsplit(":", 1)[1],
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"the gateway exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)  # a real process starting: polling the wall clock is the point
        self.stop()
        raise RuntimeError(f"the gateway did not start: {self.log.read_text()[-2000:]}")

    def trigger(self, client: httpx.Client, dedup_key: str) -> str:
        payload = {"dedup_key": dedup_key, "level": "I", "title": f"基准测试应急 {dedup_key}"}
        return self.post(client, "", payload, 202).json()["emergency_id"]

    def post(self, client: httpx.Client, action: str, payload: dict, expect: int):
        body = json.dumps(payload).encode()
        ts = str(int(time.time()))
        r = client.post(
            self.url + "/v1/emergencies/monitoring" + action,
            content=body,
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: ts,
                SIGNATURE_HEADER: sign(SECRET, ts, body),
            },
        )
        if r.status_code != expect:
            raise RuntimeError(f"the gateway answered {r.status_code}: {r.text}")
        return r

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)


def _measure(bench: Bench, count: int) -> tuple[list[float], list[float], list[float]]:
    """(ours, empty, run starts): seconds from the webhook to the first page, from the
    empty run's creation to its post, and from the webhook to our flow run's start (the
    server's timestamp: what the page no longer waits for)."""
    from prefect.settings import PREFECT_API_URL

    from flows.emergency import PrefectDispatcher

    receiver = Receiver()
    config = make_config(
        bench.workdir / "emergency-path",
        receiver.url,
        {"backoff_base_seconds": 1},
    )
    api_url = PREFECT_API_URL.value()
    saved = {k: os.environ.get(k) for k in ("TASKFORCE_CONFIG_DIR", RECEIVER_ENV)}
    # The runner's child processes inherit these (the domain database is the run's copy).
    os.environ["TASKFORCE_CONFIG_DIR"] = str(config)
    os.environ[RECEIVER_ENV] = receiver.url
    gateway_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(bench.workdir / "emergency-gateway-prefect-home"),
        "TASKFORCE_DATABASE_URL": bench.url,
        "TASKFORCE_WEBHOOK_SECRET_MONITORING": SECRET,
    }
    ready, handle = threading.Event(), {}
    thread = threading.Thread(target=_serve, args=(ready, handle), daemon=True)
    thread.start()
    ready.wait(60)
    gateway = _Gateway(bench, gateway_env)
    empty_dispatch = PrefectDispatcher(deployment=EMPTY_DEPLOYMENT, timeout_seconds=30)
    ours, empty, run_starts = [], [], []
    try:
        with httpx.Client(timeout=60) as client:
            for i in range(count + 1):  # the first of each is a warm-up, not counted
                marker = str(uuid.uuid4())
                started = time.perf_counter()
                empty_dispatch(marker)
                arrived = receiver.wait_first(
                    lambda d, _p, _b, m=marker: d == f"empty:{m}", TIMEOUT_SECONDS
                )
                if arrived is None:
                    raise RuntimeError(f"the empty run {marker} never reached the receiver")
                if i:
                    empty.append(arrived - started)

                started, sent_at = time.perf_counter(), time.time()
                public_id = gateway.trigger(client, f"bench-path-{marker}")
                arrived = receiver.wait_first(
                    lambda d, _p, _b, e=public_id: d.startswith(f"emergency:{e}:page"),
                    TIMEOUT_SECONDS,
                )
                if arrived is None:
                    raise RuntimeError(f"emergency {public_id}: no page reached the receiver")
                if i:
                    ours.append(arrived - started)
                for action in ("/acknowledge", "/resolve"):
                    gateway.post(client, action, {"dedup_key": f"bench-path-{marker}"}, 200)
                run_started = _wait_run_ended(bench, public_id)
                if i and run_started is not None:
                    run_starts.append(run_started - sent_at)
                bench.status(
                    f"emergency path: {i}/{count}: page {ours[-1] if i else arrived - started:.2f} s"
                )
    finally:
        gateway.stop()
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(handle["runner"].astop(), handle["loop"]).result(60)
        thread.join(60)
        receiver.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return ours, empty, run_starts


def _wait_run_ended(bench: Bench, public_id: str) -> float | None:
    """Until the emergency's flow run has ended (it does not wait for the answers): no
    pile-up. Returns the run's start (epoch seconds, the Prefect server's clock)."""
    from prefect.client.orchestration import get_client
    from sqlalchemy import text

    deadline = time.monotonic() + TIMEOUT_SECONDS
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            with bench.engine.connect() as conn:
                run_id = conn.execute(
                    text("SELECT flow_run_id FROM emergency WHERE public_id = :p"),
                    {"p": public_id},
                ).scalar()
            run = client.read_flow_run(run_id) if run_id else None
            if run is not None and run.state is not None and run.state.is_final():
                if not run.state.is_completed():
                    raise RuntimeError(f"emergency {public_id}: its run ended {run.state.name}")
                _check_paged_by_the_gateway(bench, public_id)
                return run.start_time.timestamp() if run.start_time else None
            time.sleep(0.2)  # another process (the flow run) moves it: poll
    raise RuntimeError(f"emergency {public_id}: its flow run did not end")


def _check_paged_by_the_gateway(bench: Bench, public_id: str) -> None:
    from sqlalchemy import text

    with bench.engine.connect() as conn:
        paged_by = (
            conn.execute(
                text(
                    "SELECT actor FROM trail_entry WHERE subject_id = :p"
                    " AND action = 'emergency.paged'"
                ),
                {"p": public_id},
            )
            .scalars()
            .all()
        )
    if paged_by != ["gateway:monitoring"]:
        raise RuntimeError(f"emergency {public_id}: paged by {paged_by}, not the gateway")


def _intake_process() -> bool:
    """Whether the served gateway writes and pages in a child (its config, copied)."""
    from taskforce.policy import load_policy

    return load_policy().gateway.intake_process


def _p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def run(bench: Bench) -> list[Result]:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    count = EMERGENCIES if bench.scale >= 0.05 else 2
    if PREFECT_API_URL.value():  # a server is configured already (the test suite's)
        server = contextlib.nullcontext()
    else:
        bench.status("emergency path: starting a local Prefect server")
        server = prefect_test_harness(server_startup_timeout=120)
    with server:
        bench.status(f"emergency path: {count} emergencies and {count} empty runs, one at a time")
        ours, empty, run_starts = _measure(bench, count)
    p50, p95 = statistics.median(ours), _p95(ours)
    e50, e95 = statistics.median(empty), _p95(empty)
    detail = (
        "first page sent by the gateway's dispatch thread before it starts the flow run "
        f"(intake {'in a child process' if _intake_process() else 'in a thread'}); "
        f"served Runner (poll {POLL_SECONDS} s, a child process per flow run); "
        f"{count} each, one at a time; empty run p50 {e50:.2f} s p95 {e95:.2f} s"
    )
    if run_starts:
        detail += (
            f"; our flow run started p50 {statistics.median(run_starts):.2f} s "
            f"p95 {_p95(run_starts):.2f} s after the webhook"
        )
    return [
        Result(
            "emergency path, webhook → first page, p50",
            p50,
            e50,
            goal=f"overhead ≤ {GOAL_OVERHEAD_SECONDS} s",
            met=p50 - e50 <= GOAL_OVERHEAD_SECONDS,
            notes=f"overhead {p50 - e50:+.2f} s over the empty run; {detail}",
            extra={"ours": ours, "empty": empty, "run_starts": run_starts},
        ),
        Result(
            "emergency path, webhook → first page, p95",
            p95,
            e95,
            goal=f"≤ {GOAL_P95_SECONDS} s, overhead ≤ {GOAL_OVERHEAD_SECONDS} s",
            met=p95 <= GOAL_P95_SECONDS and p95 - e95 <= GOAL_OVERHEAD_SECONDS,
            notes=f"overhead {p95 - e95:+.2f} s; runs {[round(x, 2) for x in ours]}",
        ),
    ]
