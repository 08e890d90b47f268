"""Thin Prefect tasks over the loop's core services: one transaction each."""

from __future__ import annotations

from prefect import task

from taskforce.context import Context
from taskforce.db import unit_of_work
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


@task(name="report-issue", retries=2, retry_delay_seconds=1)
def report_issue(form: ReportIssueForm, actor: str, key: str | None) -> ReportResult:
    with unit_of_work() as session:
        return report.report_issue(session, Context.default(), form, actor=actor, key=key)


@task(name="coordinate", retries=2, retry_delay_seconds=1)
def coordinate_issue(
    issue_number: str, form: CoordinateForm, actor: str, key: str | None
) -> StepResult:
    with unit_of_work() as session:
        return coordinate.coordinate(
            session, Context.default(), issue_number, form, actor=actor, key=key
        )


@task(name="leadership-vote", retries=2, retry_delay_seconds=1)
def leadership_vote(
    issue_number: str, form: LeadershipVoteForm, actor: str, key: str | None
) -> StepResult:
    with unit_of_work() as session:
        return coordinate.leadership_vote(
            session, Context.default(), issue_number, form, actor=actor, key=key
        )


@task(name="file-plan", retries=2, retry_delay_seconds=1)
def file_plan(issue_number: str, form: PlanForm, actor: str, key: str | None) -> StepResult:
    with unit_of_work() as session:
        return plan.file_plan(session, Context.default(), issue_number, form, actor=actor, key=key)


@task(name="record-progress", retries=2, retry_delay_seconds=1)
def record_progress(
    issue_number: str, form: ProgressForm, actor: str, key: str | None
) -> StepResult:
    with unit_of_work() as session:
        return feedback.report_progress(
            session, Context.default(), issue_number, form, actor=actor, key=key
        )


@task(name="evaluate", retries=2, retry_delay_seconds=1)
def evaluate_issue(
    issue_number: str, form: EvaluateForm, actor: str, key: str | None
) -> StepResult:
    with unit_of_work() as session:
        return evaluate.evaluate(
            session, Context.default(), issue_number, form, actor=actor, key=key
        )


@task(name="dispatch-sweep")
def run_sweep() -> sweep.SweepResult:
    with unit_of_work() as session:
        return sweep.dispatch_sweep(session, Context.default())


@task(name="issue-board")
def issue_board():
    with unit_of_work() as session:
        return sweep.stage_of_issues(session)
