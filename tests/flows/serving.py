"""Flows served as real deployments by a Prefect Runner in a thread of the test process:
each run starts in a process of its own, as a worker starts it."""

import asyncio
import contextlib
import contextvars
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import Log
from prefect.runner import Runner

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.loop.forms import ReportIssueForm
from taskforce.loop.report import report_issue


@contextlib.contextmanager
def serving(*deployments) -> Iterator[None]:
    runner = Runner(query_seconds=1, pause_on_shutdown=False)
    for deployment in deployments:
        runner.add_deployment(deployment)
    loop = asyncio.new_event_loop()
    # In the caller's context, so that its `temporary_settings` reach the runs it starts.
    context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run, args=(loop.run_until_complete, runner.start()), daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(runner.astop(), loop).result(30)
        thread.join(30)


def wait_for(predicate: Callable[[], Any], timeout: float = 90.0, what: str = "condition") -> Any:
    """Poll a real external process until `predicate` is truthy; returns its value.
    Event.wait keeps the loop responsive."""
    tick = threading.Event()
    deadline = dt.datetime.now() + dt.timedelta(seconds=timeout)
    while dt.datetime.now() < deadline:
        if value := predicate():
            return value
        tick.wait(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def reported(title: str) -> str:
    """A new issue reported by the tax bureau; its number."""
    with unit_of_work() as s:
        return report_issue(
            s, Context.default(), ReportIssueForm(title=title, reporting_unit="tax"), actor="test"
        ).issue_number


def run_log(flow_run_id) -> list[Log]:
    """The run's log as the UI's Logs tab shows it (the lines the run sent to the API)."""
    with get_client(sync_client=True) as client:
        return client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )


def ended_log(flow_run_id) -> list[Log]:
    """The run's log once its own last line ("Finished in state …") has arrived."""

    def ended():
        logs = run_log(flow_run_id)
        return (
            logs
            if any(
                log.task_run_id is None and log.message.startswith("Finished in state")
                for log in logs
            )
            else None
        )

    return wait_for(ended, timeout=30, what="the run's last log line")
