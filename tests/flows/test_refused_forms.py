"""What an operator sees in a run's log (the UI's Logs tab) when a form is refused, with the
flow served as a real deployment: each run in a process of its own, logs sent to the API."""

import datetime as dt

import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from sqlalchemy import func, select

from flows.loop import coordinate_flow
from taskforce.db import unit_of_work
from taskforce.loop.models import Meeting
from taskforce.trail.models import TrailEntry
from tests.flows.serving import reported, run_log, serving, wait_for

pytestmark = pytest.mark.slow


def test_a_form_refused_before_the_run_starts_says_why_in_the_runs_log(flow_db):
    """Shares adding up to 90 pass the server's schema check; Prefect refuses them when the
    run starts, before the flow's body. The reason was logged only to the worker's terminal:
    the UI showed a red "Failed" and six INFO lines (an operator trial)."""
    number = reported("拒绝表单问题")
    trail = _count(TrailEntry)
    with serving(coordinate_flow.to_deployment("test-refused")):
        run = run_deployment(
            "coordinate-issue/test-refused",
            parameters={
                "issue_number": number,
                "form": {
                    "participants": ["tax", "housing"],
                    "responsible": [
                        {"unit": "tax", "share_percent": 60},
                        {"unit": "housing", "share_percent": 30},
                    ],
                    "solution": "统一口径",
                    "deadline": str(dt.date.today() + dt.timedelta(days=40)),
                },
            },
            timeout=0,
        )

        def final():
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(run.id).state
            return state if state and state.is_final() else None

        assert wait_for(final, what="the run to end").is_failed()
        lines = wait_for(
            lambda: [
                log.message
                for log in run_log(run.id)
                if "refused before the run started" in log.message
            ],
            timeout=30,
            what="the refusal in the run's log",
        )
    assert len(lines) == 1
    assert "form.responsible: shares must add up to 100" in lines[0]  # not "Value error, "
    assert "\n" not in lines[0] and "Start a new run with the form corrected" in lines[0]
    assert _count(TrailEntry) == trail and _count(Meeting) == 0


def _count(model) -> int:
    with unit_of_work() as s:
        return s.scalar(select(func.count()).select_from(model))
