"""`issue-lifecycle`: walk one issue round the loop, waiting for each human step's form.

Written as "read the issue's state from the database, do the next step",
because Prefect 3 re-runs a suspended flow from the top when it resumes:
the domain database (not the flow's memory) knows which step is next, and
each wait's key is derived from that state, so a resumed run finds its input
at once and the step's idempotency key makes applying it again a no-op. A
wait of weeks holds no process (`suspend_flow_run` needs a deployment).
Deadlines are enforced by the dispatch sweep, never by a suspend timeout.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, suspend_flow_run, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.context import FlowRunContext
from pydantic import ValidationError
from sqlalchemy import func, select

from flows.loop import IssueNumber, IssueNumberParam, Operator, OperatorParam, outcome_line
from taskforce.clock import as_utc, last_day, local_minute
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.errors import DomainError, problem_text
from taskforce.loop.colours import colour_sql
from taskforce.loop.forms import (
    CoordinateForm,
    EvaluateForm,
    LeadershipVoteForm,
    PlanForm,
    ProgressForm,
)
from taskforce.loop.models import (
    PENDING_DECISION,
    Decision,
    Issue,
    ProgressReport,
    Stage,
    TaskLevel,
    TaskNode,
)
from taskforce.reports.audience import PREFECT_UI_CLEARANCE, WITHHELD
from tasks import loop as steps

FORMS = {
    "coordinate": CoordinateForm,
    "leadership_vote": LeadershipVoteForm,
    "plan": PlanForm,
    "progress": ProgressForm,
    "evaluate": EvaluateForm,
}
TASKS = {
    "coordinate": steps.coordinate_issue,
    "leadership_vote": steps.leadership_vote,
    "plan": steps.file_plan,
    "progress": steps.record_progress,
    "evaluate": steps.evaluate_issue,
}


@task(name="read-issue-state", cache_policy=None)
def read_state(issue_number: str) -> dict:
    """The issue's stage and the next step it waits for, from the database."""
    with unit_of_work() as s:
        issue = s.scalar(select(Issue).where(Issue.number == issue_number))
        if issue is None:
            raise ValueError(f"issue_number: no issue {issue_number!r}")
        pending_vote = s.scalar(
            select(func.count(Decision.id)).where(
                Decision.issue_id == issue.id,
                Decision.round == issue.round,
                Decision.status.in_(PENDING_DECISION),
            )
        )
        reports = s.scalar(
            select(func.count(ProgressReport.id))
            .join(TaskNode, TaskNode.id == ProgressReport.task_id)
            .where(TaskNode.issue_id == issue.id)
        )
        ctx = Context.default()
        colour = colour_sql(ctx.today(), ctx.policy.progress)
        open_items = s.execute(
            select(TaskNode.id, TaskNode.title, TaskNode.progress_percent, colour)
            .where(
                TaskNode.issue_id == issue.id,
                TaskNode.level == TaskLevel.action_item,
                TaskNode.done.is_(False),
            )
            .order_by(TaskNode.id)
        ).all()
        step = {
            Stage.reported: "coordinate",
            Stage.coordinating: "leadership_vote" if pending_vote else "coordinate",
            Stage.planning: "plan",
            Stage.executing: "progress",
            Stage.evaluating: "evaluate",
            Stage.closed: None,
        }[issue.stage]
        # The state is this run's artifact: what the Prefect UI (internal clearance) may not
        # read is withheld (an operator trial read a secret issue's title and items here).
        shown = issue.classification.readable_by(PREFECT_UI_CLEARANCE)
        timezone = ctx.policy.timezone
        return {
            "number": issue.number,
            "title": issue.title if shown else WITHHELD,
            "stage": issue.stage.value,
            "round": issue.round,
            "next_step": step,
            # Office time, as the issue board and the messages give it (was UTC).
            "since": local_minute(as_utc(issue.stage_entered_at), timezone),
            "due": last_day(as_utc(issue.stage_due_at), timezone).isoformat()
            if issue.stage_due_at
            else None,
            # changes with every step applied: the key of the next wait
            "wait_key": f"{issue.stage.value}-{issue.round}-{pending_vote}-{reports}",
            "open_items": [
                {"id": i, "title": t if shown else WITHHELD, "percent": p, "colour": c}
                for i, t, p, c in open_items
            ],
        }


def _state_markdown(state: dict) -> str:
    lines = [
        f"# {state['number']} {state['title']}",
        "",
        f"- stage 阶段: **{state['stage']}** (round {state['round']}) since {state['since']}",
        f"- waits for 待办: **{state['next_step'] or 'nothing — closed 已销号'}**",
    ]
    if state["due"]:
        lines.append(f"- due by 时限: {state['due']}")
    if state["open_items"]:
        lines += ["", "| item | progress | colour |", "|---|---|---|"]
        lines += [
            f"| {i['id']} {i['title']} | {i['percent']} % | {i['colour']} |"
            for i in state["open_items"]
        ]
    return "\n".join(lines)


def _wait_key(wait: str, attempt: int) -> str:
    return f"{wait}-retry{attempt}" if attempt else wait


def _waited_for(wait: str, waited: set[str]) -> bool:
    """Whether this run suspended for `wait` before (its first attempt or a retry)."""
    return any(key == wait or key.startswith(f"{wait}-retry") for key in waited)


def _waited_before() -> set[str]:
    """The keys this run has suspended under before (Prefect keeps them on the run)."""
    ctx = FlowRunContext.get()
    policy = ctx.flow_run.empirical_policy if ctx is not None and ctx.flow_run else None
    return set(policy.pause_keys or ()) if policy is not None else set()


def _form_titles(form_type: type) -> tuple[str, str]:
    """The titles of a ValidationError of the form itself: as the step validates it, and
    as Prefect builds it from the resumed input (its RunInput subclass)."""
    return form_type.__name__, f"{form_type.__name__}RunInput"


def _why_refused(exc: DomainError | ValidationError) -> str:
    """One line per problem, each naming its field (pydantic's own text adds the input
    echoed back and a link, a screenful for a plan)."""
    if isinstance(exc, DomainError):
        return str(exc)
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'form'}: {problem_text(err)}"
        for err in exc.errors()
    )


@flow(
    name="issue-lifecycle",
    flow_run_name="lifecycle: {issue_number}",
    persist_result=True,
    log_prints=True,
)
async def issue_lifecycle_flow(
    issue_number: IssueNumberParam = IssueNumber,
    operator: OperatorParam = Operator,
) -> dict:
    """Walk an issue through coordination, vote, plan, progress and evaluation, one form at a time."""
    # Refused forms per wait: each new attempt waits under a key of its own, so a resumed
    # run (Prefect re-runs a suspended flow from the top) replays the same attempts.
    refused: dict[str, int] = {}
    waited = _waited_before()
    first = True
    while True:
        state = read_state(issue_number)
        await acreate_markdown_artifact(
            _state_markdown(state),
            key=f"lifecycle-{issue_number.lower()}",
            description="Where this issue stands",
        )
        step = state["next_step"]
        if step is None:
            return state
        form_type = FORMS[step]
        # A run input's key takes lowercase letters, digits and dashes only: with the step's
        # underscore (leadership_vote) Prefect refused to save the vote's form, and the run
        # could never be resumed past a major matter (an operator trial).
        wait = f"{step.replace('_', '-')}-{state['wait_key']}"
        attempt = refused.get(wait, 0)
        # Attempts refused before this replay were answered by a later wait: skip them, as
        # they were decided then. Run again, each logged its refusal once more after the
        # corrected form (reading as if that were refused), and one refused by the database
        # could be taken on a replay if the data had changed meanwhile.
        while _wait_key(wait, attempt + 1) in waited:
            attempt += 1
        if first and waited and not _waited_for(wait, waited):
            # Resumed, but the step it waited for was applied meanwhile through its own
            # deployment: the form that resumed it answers a wait that is gone. Say so (a
            # re-trial: it was dropped without a word, and the run waited for the next step).
            get_run_logger().warning(
                "%s moved on to %s (stage %s) while this run waited: the step it waited "
                "for was applied by another run, and the form sent to resume it was not "
                "applied. Resume with the %s form.",
                issue_number,
                step,
                state["stage"],
                step,
            )
        first = False
        try:
            # Prefect builds the form from the resumed input here, with the form's own checks
            # (shares adding up to 100, a vote's ballots), which the UI's schema cannot make:
            # a form refused here failed the whole run.
            form = await suspend_flow_run(
                wait_for_input=form_type, key=_wait_key(wait, attempt), timeout=None
            )
            form = form_type.model_validate(
                form.model_dump() if hasattr(form, "model_dump") else form
            )
            result = TASKS[step](
                issue_number, form, operator, f"lifecycle:{issue_number}:{step}:{state['wait_key']}"
            )
            get_run_logger().info(outcome_line(result, step))  # as the step's own flow says it
        except (DomainError, ValidationError) as exc:
            if isinstance(exc, ValidationError) and exc.title not in _form_titles(form_type):
                raise  # not the operator's form (e.g. Prefect's own state): a fault, not input
            # Bad input changes nothing: say why and wait for a corrected form, as a budget
            # review does, instead of failing the whole run.
            refused[wait] = attempt + 1
            get_run_logger().warning(
                "%s refused: %s. Resume with a corrected form.", step, _why_refused(exc)
            )
