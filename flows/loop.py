"""The closed loop's steps as flows (问题上报 → 协调会商 → 方案制定 → 执行反馈 → 效果评估).

Flows are async: Prefect 3 gives a synchronous flow about a second of fixed
overhead (a heartbeat thread) and an async one about a tenth (measured with
the demo's flows); the tasks inside stay synchronous.

Each flow is one operator action: its parameters are the step's form, so the
Prefect UI renders a form that explains itself. The flow run id is the step's
idempotency key: a retried run returns the first result and changes nothing.

Why the step runs in the flow body, not as a task run: each task run costs
about 0.085 s over an empty async flow (`python -m benchmarks.loop_step_parts`),
two tasks (the step, the delivery) were most of report-issue's overhead over an
empty deployment run, and issue 9 allows 0.3 s. The step is idempotent by key,
so the flow retries what a task retry was for (a busy or lost database); the
long-running lifecycle flow (flows/lifecycle.py) keeps the task runs.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, TypeVar

from prefect import Task, flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.context import FlowRunContext
from prefect.runtime import flow_run
from pydantic import Field
from sqlalchemy.exc import OperationalError

from flows.parameters import form_of
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
from taskforce.policy.schema import Classification
from taskforce.process import freeze_startup_objects
from taskforce.reports.audience import PREFECT_UI_CLEARANCE, WITHHELD
from tasks import loop as steps
from tasks.notify import deliver_pending_notifications, trail_position

R = TypeVar("R")

TRANSIENT_RETRIES = 2
STEP_ENTRIES_MAX = 1_000


async def _step(step: Task, *args: object) -> tuple[R, range]:
    """Run a step's core function in this flow run; retry only a database that was busy or lost.

    A domain error (bad input, a step out of order) fails at once with its message:
    retrying it would only make the operator wait. A retry replays the same key.
    Returns the result and the trail entries appended meanwhile (the step's own, and
    whatever another process appended in the same moment).
    """
    since = trail_position()
    for _ in range(TRANSIENT_RETRIES):
        try:
            return step.fn(*args), range(since + 1, trail_position() + 1)
        except OperationalError:
            await asyncio.sleep(1)
    return step.fn(*args), range(since + 1, trail_position() + 1)


# Prefect titles a flow's parameters with their names and keeps only the default Field's
# description: constraints go in Annotated (checked by the UI form before a run starts),
# the words an operator reads in the description.
IssueNumberParam = Annotated[str, Field(pattern=r"^TF-\d{4}-\d{5}$", examples=["TF-2026-00001"])]
IssueNumber = Field(..., description="Issue number 问题编号, e.g. TF-2026-00001.")
OperatorParam = Annotated[str, Field(min_length=1, max_length=100)]
Operator = Field(
    "executive-office", description="Operator 操作人: who acts (a member code or the office)."
)
KeyParam = Annotated[str | None, Field(max_length=200)]
IdempotencyKey = Field(
    None,
    description="Idempotency key 幂等键: leave empty (the run's own id is used). The same key "
    "with the same input returns the first result; with a different input it is refused.",
)


def _report_run_name(form: ReportIssueForm) -> str:
    """A report's run is named after its title, unless the issue is secret: a run's name is
    in the run list and at the head of each of its log lines in the terminal (an operator
    trial), and those reach whoever reads Prefect, cleared or not."""
    if form.classification.readable_by(Classification.internal):
        return f"report: {form.title}"
    return f"report: a {form.classification.value} issue from {form.reporting_unit}"


async def _begin_run(name: str) -> None:
    """A step's first line: settle the process (see taskforce/process.py), name the run."""
    freeze_startup_objects()
    await _name_run(name)


async def _name_run(name: str) -> None:
    """Name the run after what it does, with the run's own API client.

    Not `flow_run_name=`: Prefect resolves a templated name through a second result-store
    set-up with a new API client (TLS context, a request), which costs a deployment run's
    fresh process about 0.1 s (issue 9: benchmarks/RESULTS.md, report-issue).
    """
    ctx = FlowRunContext.get()
    if ctx is not None and ctx.flow_run is not None:
        await ctx.client.set_flow_run_name(ctx.flow_run.id, name)


# Details that are numbers, dates and verdicts, never an issue's words: shown for every
# issue. The others (item titles, reasons) only where the UI may read the issue.
_DETAILS_WITHOUT_TEXT = frozenset(
    {"plan_id", "item_ids", "on_time", "due", "plan_due", "decision_id", "major", "passed",
     "yes", "no", "abstain", "absent", "required", "members", "task_id", "percent", "colour",
     "evaluation_due", "outcome", "returns"}
)  # fmt: skip


def _detail(result: StepResult | ReportResult) -> list[str]:
    """The step's details as the artifact's list items; a secret issue's text withheld (an
    operator trial read a secret plan's item titles here), its ids and dates still shown
    (the progress form asks for the ids)."""
    detail = getattr(result, "detail", {})
    shown = _shown_in_ui(result)
    lines = []
    for k, v in detail.items():
        if not shown and k not in _DETAILS_WITHOUT_TEXT:
            v = WITHHELD
        elif isinstance(v, list | tuple):
            # Words, not Python's brackets and quotes (a re-trial read
            # "reasons: ['involves more than one region (east, west)']").
            v = "; ".join(str(x) for x in v)
        lines.append(f"- {k}: {v}")
    return lines


def _shown_in_ui(result: StepResult | ReportResult) -> bool:
    level = getattr(result, "classification", None)
    return level is not None and Classification(level).readable_by(PREFECT_UI_CLEARANCE)


def _key(explicit: str | None) -> str:
    return explicit or f"flow-run:{flow_run.get_id()}"


def outcome_line(result: StepResult | ReportResult, step: str, *, replayed: bool = False) -> str:
    """The step's one line in the run's log (numbers and stages: a title may be classified).
    Operator trials: a report linked as a duplicate, a vote's result and a replayed key
    were said only in the artifact, or not at all."""
    if replayed:
        return (
            f"{result.issue_number}: {step}: done already by an earlier run with this key; "
            f"nothing changed; stage now {result.stage}"
        )
    if getattr(result, "duplicate", False):
        return (
            f"linked to {result.issue_number} as a duplicate report (no new issue); "
            f"{result.issue_number} is at stage {result.stage}"
        )
    detail = getattr(result, "detail", {})
    if "passed" in detail:
        return f"{result.issue_number}: {_vote_words(detail)}; stage now {result.stage}"
    if detail.get("major") is True:  # the coordination referred it: say so (a re-trial)
        return (
            f"{result.issue_number}: {step}; a major matter, referred to the leadership group "
            f"(pre-review, expert review, vote); stage now {result.stage}"
        )
    return f"{result.issue_number}: {step}; stage now {result.stage}"


def _vote_words(detail: dict) -> str:
    """'leadership vote passed (5 yes of 7 members, 5 needed)' — counts only."""
    verdict = "passed" if detail["passed"] else "did not pass"
    if "yes" not in detail:  # refused at the agenda pre-review: no ballot was cast
        return "agenda pre-review did not pass (no vote taken)"
    return (
        f"leadership vote {verdict} ({detail['yes']} yes of {detail['members']} members, "
        f"{detail['required']} needed)"
    )


async def _publish(result: StepResult | ReportResult, step: str, caused: range) -> None:
    """Send the step's own notifications now and show where the issue stands.

    Only the step's: a backlog (a weekly sweep's tens of thousands of rows) is the
    every-minute delivery flow's, and must not make an operator's step wait on it.
    """
    number = result.issue_number
    if flow_run.get_id():
        # A step applied appends to the trail; a key's replay returns the first result alone.
        get_run_logger().info(outcome_line(result, step, replayed=not caused))
    lines = [f"## {number}: {step}", "", f"- stage now: **{result.stage}**", *_detail(result)]
    # A step appends a handful of entries; a range far longer means another process wrote
    # at the same moment, whose rows the delivery flow sends within the minute.
    delivery = asyncio.to_thread(
        deliver_pending_notifications.fn,
        limit=200,
        trail_entry_ids=list(caused[:STEP_ENTRIES_MAX]),
    )
    if not flow_run.get_id():
        await delivery
        return
    # The sends and the artifact's API call wait on different sockets: overlap them.
    await asyncio.gather(
        delivery,
        acreate_markdown_artifact(
            "\n".join(lines), key=f"issue-{number.lower()}", description=f"{number} state"
        ),
    )


@flow(name="report-issue", log_prints=True)
async def report_issue_flow(
    form: ReportIssueForm = form_of(ReportIssueForm),
    operator: OperatorParam = Operator,
    idempotency_key: KeyParam = IdempotencyKey,
) -> ReportResult:
    """问题上报 — report an issue to the executive group (首接负责制; duplicates are linked)."""
    await _begin_run(_report_run_name(form))
    result, caused = await _step(steps.report_issue, form, operator, _key(idempotency_key))
    await _publish(
        result, "reported (duplicate linked)" if result.duplicate else "reported", caused
    )
    return result


@flow(name="coordinate-issue", log_prints=True)
async def coordinate_flow(
    issue_number: IssueNumberParam = IssueNumber,
    form: CoordinateForm = form_of(CoordinateForm),
    operator: OperatorParam = Operator,
    idempotency_key: KeyParam = IdempotencyKey,
) -> StepResult:
    """协调会商 — record the coordination meeting; major matters go to the leadership group."""
    await _begin_run(f"{issue_number}: coordinate")
    result, caused = await _step(
        steps.coordinate_issue, issue_number, form, operator, _key(idempotency_key)
    )
    await _publish(result, "coordinated", caused)
    return result


@flow(name="leadership-vote", log_prints=True)
async def leadership_vote_flow(
    issue_number: IssueNumberParam = IssueNumber,
    form: LeadershipVoteForm = form_of(LeadershipVoteForm),
    operator: OperatorParam = Operator,
    idempotency_key: KeyParam = IdempotencyKey,
) -> StepResult:
    """议题预审-专家论证-集体表决 — passes only with ≥ 2/3 of all leadership members voting yes."""
    await _begin_run(f"{issue_number}: leadership vote")
    result, caused = await _step(
        steps.leadership_vote, issue_number, form, operator, _key(idempotency_key)
    )
    await _publish(result, "leadership vote", caused)
    return result


@flow(name="file-plan", log_prints=True)
async def file_plan_flow(
    issue_number: IssueNumberParam = IssueNumber,
    form: PlanForm = form_of(PlanForm),
    operator: OperatorParam = Operator,
    idempotency_key: KeyParam = IdempotencyKey,
) -> StepResult:
    """方案制定 — the task tree 总目标-子项目-行动项, filed with the leadership group (备案)."""
    await _begin_run(f"{issue_number}: plan")
    result, caused = await _step(
        steps.file_plan, issue_number, form, operator, _key(idempotency_key)
    )
    await _publish(result, "plan filed", caused)
    return result


@flow(name="record-progress", log_prints=True)
async def record_progress_flow(
    issue_number: IssueNumberParam = IssueNumber,
    form: ProgressForm = form_of(ProgressForm),
    operator: OperatorParam = Operator,
    idempotency_key: KeyParam = IdempotencyKey,
) -> StepResult:
    """执行反馈 — progress on an action item; red items warn the executive director."""
    await _begin_run(f"{issue_number}: progress on item {form.task_id}")
    result, caused = await _step(
        steps.record_progress, issue_number, form, operator, _key(idempotency_key)
    )
    await _publish(result, f"progress on item {form.task_id}", caused)
    return result


@flow(name="evaluate-issue", log_prints=True)
async def evaluate_flow(
    issue_number: IssueNumberParam = IssueNumber,
    form: EvaluateForm = form_of(EvaluateForm),
    operator: OperatorParam = Operator,
    idempotency_key: KeyParam = IdempotencyKey,
) -> StepResult:
    """效果评估 — solved closes the issue; otherwise it returns to coordination."""
    await _begin_run(f"{issue_number}: evaluate")
    result, caused = await _step(
        steps.evaluate_issue, issue_number, form, operator, _key(idempotency_key)
    )
    await _publish(result, "evaluated", caused)
    return result
