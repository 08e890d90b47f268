"""A flow run killed in the middle of a step, then run again: one state change, one trail entry,
one set of notifications."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL
from sqlalchemy import func, select

from taskforce.db import unit_of_work
from taskforce.loop.models import Issue, IssueReport
from taskforce.notify.models import OutboxMessage
from taskforce.trail import verify
from taskforce.trail.models import TrailEntry

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _run(point: str, key: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(Path(__file__).with_name("crash_step.py")), point, key],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _counts():
    with unit_of_work() as s:
        return (
            s.scalar(select(func.count(Issue.id))),
            s.scalar(select(func.count(IssueReport.id))),
            s.scalar(select(func.count(TrailEntry.id))),
            s.scalar(select(func.count(OutboxMessage.id))),
            verify(s).ok,
        )


@pytest.mark.parametrize("point", ["before-commit", "after-commit"])
def test_killed_step_rerun_applies_once(flow_db, point):
    killed = _run(point, f"crash-{point}")
    assert killed.returncode == -9, killed.stderr[-2000:]
    after_kill = _counts()
    assert after_kill[0] == (0 if point == "before-commit" else 1)
    rerun = _run("none", f"crash-{point}")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    issues, reports, trail, outbox, ok = _counts()
    assert (issues, reports, trail) == (1, 1, 1) and ok
    assert outbox == 1  # the executive group, once
