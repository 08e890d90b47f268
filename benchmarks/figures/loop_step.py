"""One loop step (report-issue) through Prefect, against an empty async flow started the same way.

Two ways: a direct flow call in this process (Prefect's local mode against a
test server), and a deployment run picked up by a served Runner (child
process per run), timed start to finish by the server's own timestamps.
Needs `PREFECT_HOME` set before Prefect is imported (benchmarks.run does it).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid

from prefect import flow

from benchmarks.core import Bench, Result

NAME = "loop_step"
CALLS = 5
DEPLOYMENT_RUNS = 7
GOAL_ADDED_SECONDS = 0.3


@flow(name="bench-empty")
async def empty_flow() -> None:
    """The baseline: an async flow that does nothing."""
    return None


def _form(i: int):
    from taskforce.loop.forms import ReportIssueForm

    return ReportIssueForm(
        title=f"基准测试上报问题 {uuid.uuid4().hex[:8]} #{i}",
        reporting_unit="finance",
        related_units=["tax"],
        category="finance",
    )


async def _flow_calls() -> tuple[list[float], list[float]]:
    from flows.loop import report_issue_flow

    await empty_flow()  # warm both (first call registers the flow)
    await report_issue_flow(form=_form(0), idempotency_key=f"bench:{uuid.uuid4()}")
    empty, ours = [], []
    for i in range(CALLS):
        t = time.perf_counter()
        await empty_flow()
        empty.append(time.perf_counter() - t)
        t = time.perf_counter()
        await report_issue_flow(form=_form(i + 1), idempotency_key=f"bench:{uuid.uuid4()}")
        ours.append(time.perf_counter() - t)
    return empty, ours


def _served(runner_ready: threading.Event, stop: dict):
    from prefect.runner import Runner

    from flows.loop import report_issue_flow

    runner = Runner(query_seconds=1, pause_on_shutdown=False)
    runner.add_deployment(empty_flow.to_deployment("bench-empty"))
    runner.add_deployment(report_issue_flow.to_deployment("bench-report"))
    loop = asyncio.new_event_loop()
    stop["runner"], stop["loop"] = runner, loop
    runner_ready.set()
    loop.run_until_complete(runner.start())


def _deployment_runs(bench: Bench) -> tuple[list[float], list[float]]:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    ready, stop = threading.Event(), {}
    thread = threading.Thread(target=_served, args=(ready, stop), daemon=True)
    thread.start()
    ready.wait(60)

    def one(name: str, params: dict) -> float:
        run = run_deployment(name, parameters=params, timeout=300, poll_interval=0.5)
        with get_client(sync_client=True) as client:
            fr = client.read_flow_run(run.id)
        if not fr.state.is_completed():
            raise RuntimeError(f"{name} ended {fr.state.type}: {fr.state.message}")
        return (fr.end_time - fr.start_time).total_seconds()

    try:
        empty, ours = [], []
        one("bench-empty/bench-empty", {})  # the runner registers and warms up
        for i in range(DEPLOYMENT_RUNS):
            empty.append(one("bench-empty/bench-empty", {}))
            form = _form(100 + i).model_dump(mode="json")
            ours.append(
                one(
                    "report-issue/bench-report",
                    {"form": form, "idempotency_key": f"bench:{uuid.uuid4()}"},
                )
            )
        return empty, ours
    finally:
        asyncio.run_coroutine_threadsafe(stop["runner"].astop(), stop["loop"]).result(30)
        thread.join(30)


def run(bench: Bench, deployments: bool = True) -> list[Result]:
    import contextlib

    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    results = []
    if PREFECT_API_URL.value():  # a server is configured already (the test suite's)
        server = contextlib.nullcontext()
    else:
        bench.status("loop step: starting a local Prefect server")
        server = prefect_test_harness(server_startup_timeout=120)
    with server, temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        bench.status(f"loop step: {CALLS} flow calls each")
        empty, ours = asyncio.run(_flow_calls())
        e, o = statistics.median(empty), statistics.median(ours)
        results.append(
            Result(
                "report-issue as an async flow call (median)",
                o,
                e,
                goal=f"added ≤ {GOAL_ADDED_SECONDS} s",
                met=o - e <= GOAL_ADDED_SECONDS,
                notes=f"added {o - e:.3f} s over the empty flow; "
                f"runs {[round(x, 3) for x in ours]}",
            )
        )
        if deployments:
            bench.status(f"loop step: {DEPLOYMENT_RUNS} deployment runs each on a served runner")
            empty, ours = _deployment_runs(bench)
            e, o = statistics.median(empty), statistics.median(ours)
            results.append(
                Result(
                    "report-issue as a deployment run, start→end (median)",
                    o,
                    e,
                    goal=f"added ≤ {GOAL_ADDED_SECONDS} s",
                    met=o - e <= GOAL_ADDED_SECONDS,
                    notes=f"added {o - e:.3f} s over the empty deployment run; "
                    f"runs {[round(x, 3) for x in ours]}",
                )
            )
    return results
