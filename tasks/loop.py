"""Thin Prefect tasks over the loop's core services: one transaction each."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from prefect import task
from pydantic import ValidationError

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.errors import DomainError
from taskforce.loop import coordinate, evaluate, feedback, plan, report, sweep
from taskforce.loop.forms import (
    CoordinateForm,
    EvaluateForm,
    LeadershipVoteForm,
    PlanForm,
    ProgressForm,
    ReportIssueForm,
    ReportResult,
    StepResult,
)

R = TypeVar("R")


def _transient(_task, _task_run, state) -> bool:
    """Retry what may pass next time (a lock, a lost connection), not refused input: a
    bad form fails the same way three times and buries its message under tracebacks."""
    try:
        state.result()
    except (DomainError, ValidationError):
        return False
    except Exception:
        return True
    return True


# A retry replays the same key: applied once.
STEP = {"retries": 2, "retry_delay_seconds": 1, "retry_condition_fn": _transient}


def _in_transaction(service: Callable[..., R], *args, **kwargs) -> R:
    """Run one core service in its own transaction with the process's default context."""
    with unit_of_work() as session:
        return service(session, Context.default(), *args, **kwargs)


@task(name="report-issue", **STEP)
def report_issue(form: ReportIssueForm, actor: str, key: str | None) -> ReportResult:
    return _in_transaction(report.report_issue, form, actor=actor, key=key)


@task(name="coordinate", **STEP)
def coordinate_issue(
    issue_number: str, form: CoordinateForm, actor: str, key: str | None
) -> StepResult:
    return _in_transaction(coordinate.coordinate, issue_number, form, actor=actor, key=key)


@task(name="leadership-vote", **STEP)
def leadership_vote(
    issue_number: str, form: LeadershipVoteForm, actor: str, key: str | None
) -> StepResult:
    return _in_transaction(coordinate.leadership_vote, issue_number, form, actor=actor, key=key)


@task(name="file-plan", **STEP)
def file_plan(issue_number: str, form: PlanForm, actor: str, key: str | None) -> StepResult:
    return _in_transaction(plan.file_plan, issue_number, form, actor=actor, key=key)


@task(name="record-progress", **STEP)
def record_progress(
    issue_number: str, form: ProgressForm, actor: str, key: str | None
) -> StepResult:
    return _in_transaction(feedback.report_progress, issue_number, form, actor=actor, key=key)


@task(name="evaluate", **STEP)
def evaluate_issue(
    issue_number: str, form: EvaluateForm, actor: str, key: str | None
) -> StepResult:
    return _in_transaction(evaluate.evaluate, issue_number, form, actor=actor, key=key)


@task(name="dispatch-sweep")
def run_sweep() -> sweep.SweepResult:
    """The incremental sweep alone: it reads only what may have changed."""
    return _in_transaction(sweep.dispatch_sweep, board=False)


@task(name="task-cockpit")
def fill_board(result: sweep.SweepResult) -> sweep.SweepResult:
    """The cockpit, deviation analysis and colour counts over every open item (a report)."""
    return _in_transaction(sweep.fill_board, result)


@task(name="issue-board")
def issue_board():
    with unit_of_work() as session:
        return sweep.stage_of_issues(session)
