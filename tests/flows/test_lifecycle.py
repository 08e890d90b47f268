"""`issue-lifecycle` served as a real deployment: suspend at each human step, resume with the form."""

import datetime as dt

import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.flow_runs import resume_flow_run
from prefect.settings import PREFECT_LOGGING_LEVEL, temporary_settings
from sqlalchemy import func, select

from flows.lifecycle import issue_lifecycle_flow
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.loop import coordinate
from taskforce.loop.forms import CoordinateForm
from taskforce.loop.models import Issue, Stage, TaskLevel, TaskNode
from taskforce.trail.models import TrailEntry
from tests.flows.serving import ended_log, reported, run_log, serving, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def served_lifecycle(flow_db):
    # The runs' own info lines (each step's outcome), which the suite's level leaves out: the
    # served runs are processes of their own, started with these settings.
    with (
        temporary_settings(updates={PREFECT_LOGGING_LEVEL: "INFO"}),
        serving(issue_lifecycle_flow.to_deployment("test-lifecycle")),
    ):
        yield


def _state(flow_run_id):
    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state


def _stage(number):
    with unit_of_work() as s:
        return s.scalar(select(Issue.stage).where(Issue.number == number))


def test_lifecycle_walks_the_loop_with_forms(served_lifecycle):
    number = reported("生命周期问题")
    run = run_deployment(
        "issue-lifecycle/test-lifecycle",
        parameters={"issue_number": number},
        timeout=0,
        idempotency_key=f"lifecycle:{number}",
    )
    today = dt.date.today()

    def plan(due_in: int) -> dict:
        """A plan form of one action item due in `due_in` days (the deadline is in 40)."""
        item = {"title": "改造", "owner_unit": "tax", "deliverable": "上线"}
        item["due_date"] = str(today + dt.timedelta(days=due_in))
        return {"goal": "办结", "sub_projects": [{"title": "实施", "action_items": [item]}]}

    def resume(payload, then_stage):
        wait_for(lambda: _state(run.id).is_paused(), what="the run to wait for input")
        resume_flow_run(run.id, run_input=payload)
        wait_for(lambda: _stage(number) == then_stage, what=f"stage {then_stage}")

    def waits_again(payload) -> None:
        """Resume with `payload`; the run waits again: for a corrected form when it is
        refused (instead of failing), or for the next step's."""
        wait_for(lambda: _state(run.id).is_paused(), what="the run to wait for input")
        before = _state(run.id).id
        resume_flow_run(run.id, run_input=payload)
        wait_for(
            lambda: (st := _state(run.id)).is_paused() and st.id != before,
            what="the run to wait again after a refused form",
        )

    # Shares adding up to 90: the form's own check, which the UI's schema cannot make.
    # Prefect builds the form when the run resumes; that failed the whole run.
    stage_before = _stage(number)
    waits_again(
        {
            "participants": ["tax", "housing"],
            "responsible": [
                {"unit": "tax", "share_percent": 60},
                {"unit": "housing", "share_percent": 30},
            ],
            "solution": "统一口径",
            "deadline": str(today + dt.timedelta(days=40)),
        }
    )
    assert _stage(number) == stage_before
    # Beyond the executive group's authority: a major matter, decided by the leadership's
    # vote, whose wait the run could not even save before (its key had an underscore).
    waits_again(
        {
            "participants": ["tax"],
            "responsible": [{"unit": "tax", "share_percent": 100}],
            "solution": "统一口径",
            "deadline": str(today + dt.timedelta(days=40)),
            "budget": "8000000",
        }
    )
    resume(
        {
            "pre_review_passed": True,
            "ballots": {f"L{i}": "yes" if i <= 5 else "no" for i in range(1, 8)},
            "expert_opinions": [{"expert": "X2", "supports": True, "opinion": "技术上可行"}],
        },
        Stage.planning,
    )
    # A plan whose item is due after the issue's deadline: refused, and the run waits for
    # a corrected form instead of failing (it used to retry twice, then fail the run).
    waits_again(plan(due_in=60))
    assert _stage(number) == Stage.planning
    resume(
        plan(due_in=20),
        Stage.executing,
    )
    with unit_of_work() as s:
        task_id = s.scalar(select(TaskNode.id).where(TaskNode.level == TaskLevel.action_item))
    resume({"task_id": task_id, "percent": 100, "reported_by": "W5"}, Stage.evaluating)
    resume({"outcome": "solved", "satisfaction": 91}, Stage.closed)
    final = wait_for(lambda: (st := _state(run.id)).is_final() and st, what="the run to finish")
    assert final.is_completed()
    # Each refusal logged once, though the run re-ran from the top after every resume: a
    # replay skips the attempts refused before it instead of trying (and refusing) them again.
    messages = [log.message for log in ended_log(run.id)]
    assert sum(m.startswith("coordinate refused: ") for m in messages) == 1, messages
    assert sum(m.startswith("plan refused: ") for m in messages) == 1, messages
    # The coordination's line names the field in one line; its waits are not errors.
    (coordinate,) = [m for m in messages if m.startswith("coordinate refused: ")]
    assert "responsible: shares must add up to 100" in coordinate  # not "Value error, "
    # Each step applied says what it did, as the step's own flow does (a re-trial: the
    # lifecycle run logged nothing of the steps it applied).
    assert f"{number}: leadership vote passed (5 yes of 7 members, 5 needed); " in "\n".join(
        messages
    )
    # The last step's line may reach the API after the run's earlier "Finished in state"
    # lines (`ended_log` takes any of them): waited for, not read once (a flaky newcomer run).
    closed = f"{number}: evaluate; stage now closed"
    wait_for(lambda: closed in [m.message for m in run_log(run.id)], 30, "the last step's line")
    with unit_of_work() as s:
        # each step applied once although the flow re-ran from the top after every resume
        actions = list(s.scalars(select(TrailEntry.action)))
        assert actions.count("meeting.recorded") == 1 and actions.count("plan.filed") == 1
        assert actions.count("decision.vote_closed") == 1, actions
        assert actions.count("issue.closed") == 1
        assert s.scalar(select(func.count(Issue.id))) == 1


def test_a_form_for_a_step_applied_meanwhile_is_not_applied_and_says_so(served_lifecycle):
    """A re-trial: the run waited for the coordination, which was then applied through its
    own deployment; the coordination form that resumed the run was dropped without a word."""
    number = reported("生命周期过期表单")
    run = run_deployment(
        "issue-lifecycle/test-lifecycle", parameters={"issue_number": number}, timeout=0
    )
    wait_for(lambda: _state(run.id).is_paused(), what="the run to wait for the coordination")
    form = {
        "participants": ["tax"],
        "responsible": [{"unit": "tax", "share_percent": 100}],
        "solution": "统一口径",
        "deadline": str(dt.date.today() + dt.timedelta(days=40)),
    }
    with unit_of_work() as s:  # as the `coordinate` deployment's run would apply it
        coordinate.coordinate(
            s, Context.default(), number, CoordinateForm(**form), actor="other-run", key="other"
        )
    assert _stage(number) == Stage.planning
    before = _state(run.id).id
    resume_flow_run(run.id, run_input={**form, "solution": "另一个方案"})
    wait_for(
        lambda: (st := _state(run.id)).is_paused() and st.id != before,
        what="the run to wait for the plan",
    )
    said = f"{number} moved on to plan (stage planning) while this run waited"

    def the_warning():  # the run's log lines reach the API in batches, after its state
        return [m.message for m in run_log(run.id) if m.message.startswith(said)]

    (warning,) = wait_for(the_warning, timeout=30, what="the run's warning")
    assert warning.endswith("Resume with the plan form."), warning
    with unit_of_work() as s:
        actions = list(s.scalars(select(TrailEntry.action).where(TrailEntry.subject_id == number)))
    assert actions.count("meeting.recorded") == 1, actions  # the stale form applied nothing
