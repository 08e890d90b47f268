"""Where report-issue's time over an empty flow goes: each part alone in an async flow.

    python -m benchmarks.loop_step_parts      (1/100 dataset, local Prefect test server)

A one-off decomposition for RESULTS.md, not a figure: medians of 7 calls each.
"""

from __future__ import annotations

import os
import sys
import tempfile

if "prefect" not in sys.modules:  # Prefect reads PREFECT_HOME at import
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="taskforce-bench-prefect-")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import asyncio
import statistics
import time
import uuid

from prefect import flow, task
from prefect.artifacts import acreate_markdown_artifact

from taskforce.loop.forms import ReportIssueForm

CALLS = 7


def _form() -> ReportIssueForm:
    return ReportIssueForm(title=f"分解测试 {uuid.uuid4().hex}", reporting_unit="finance")


def _key() -> str:
    return f"bench-parts:{uuid.uuid4()}"


@task
def _nothing() -> None:
    return None


@flow
async def empty() -> None:
    return None


@flow
async def core_call() -> None:
    from taskforce.context import Context
    from taskforce.db import unit_of_work
    from taskforce.loop import report

    with unit_of_work() as session:
        report.report_issue(session, Context.default(), _form(), actor="bench", key=_key())


@flow
async def empty_task() -> None:
    _nothing()


@flow
async def task_wrapped_step() -> None:
    from tasks import loop as steps

    steps.report_issue(_form(), "bench", _key())


@flow
async def artifact() -> None:
    await acreate_markdown_artifact("## bench", key="bench-parts")


@flow
async def form_parameter(form: ReportIssueForm) -> None:
    return None


@flow(flow_run_name="report: {form.title}")
async def named_run(form: ReportIssueForm) -> None:
    return None


async def _measure() -> dict[str, float]:
    from flows.loop import report_issue_flow

    variants = {
        "empty flow": empty,
        "core report_issue call": core_call,
        "empty task": empty_task,
        "task-wrapped step (tasks/loop.py)": task_wrapped_step,
        "markdown artifact": artifact,
        "pydantic form parameter": lambda: form_parameter(form=_form()),
        "templated run name + form": lambda: named_run(form=_form()),
        "report_issue_flow (all of it)": lambda: report_issue_flow(
            form=_form(), idempotency_key=_key()
        ),
    }
    for call in variants.values():  # first calls register flows and warm up
        await call()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(CALLS):
        for name, call in variants.items():
            started = time.perf_counter()
            await call()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> None:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from benchmarks import databases
    from benchmarks.dataset import QUICK_SCALE, Scale, ensure

    name, _counts, _ = ensure("sqlite", Scale(QUICK_SCALE, 9), say=lambda _line: None)
    url, engine = databases.working_copy("sqlite", name, "parts")
    os.environ["TASKFORCE_DATABASE_URL"] = url
    try:
        with (
            prefect_test_harness(server_startup_timeout=120),
            temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
        ):
            medians = asyncio.run(_measure())
    finally:
        engine.dispose()
        databases.drop("sqlite", "parts")
    base = medians["empty flow"]
    for variant, seconds in medians.items():
        print(f"{variant:36s} {seconds:.3f} s  ({seconds - base:+.3f} s over the empty flow)")


if __name__ == "__main__":
    main()
