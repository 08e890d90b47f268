"""The production path end to end, on SQLite and on PostgreSQL: a signed webhook
pages on-call, an operator's run through the Prefect API reports an issue, a
review deployment writes its report — each through a real server, real workers
and real HTTP, as the README's operator guide sets them up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from taskforce.db import get_engine, unit_of_work
from taskforce.emergency.models import EmergencyStatus
from taskforce.trail.models import TrailEntry
from tests.conftest import ROOT
from tests.e2e.helpers import (
    answer,
    assert_delivered_once,
    deliver_until,
    emergency,
    issue_by_title,
    open_emergency,
    outbox,
    wait_paged,
)
from tests.e2e.stack import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite_stack", "postgres_stack"])
def stack(request):
    return request.getfixturevalue(request.param)


def test_signed_webhook_opens_a_level_one_emergency_and_pages_on_call(stack):
    public_id, dedup_key = open_emergency(stack, "数据中心断电 Data centre power loss")

    # The gateway created the flow run with the emergency's id as idempotency key.
    flow_run_id = emergency(stack, public_id).flow_run_id
    with stack.client() as client:
        run = client.read_flow_run(flow_run_id)
        assert run.idempotency_key == public_id
        assert client.read_deployment(run.deployment_id).name == "emergency-response"

    # Paged by the gateway's dispatch thread before it started the run (not by the run's
    # process on the emergency worker, which takes seconds to start).
    pages = wait_paged(stack, public_id)
    with unit_of_work(get_engine(stack.database_url)) as s:
        paged_by = s.scalars(
            select(TrailEntry.actor).where(
                TrailEntry.subject_id == public_id, TrailEntry.action == "emergency.paged"
            )
        ).all()
    assert paged_by == ["gateway:monitoring"]
    deliver_until(stack, pages)
    assert_delivered_once(stack, pages)
    page = stack.receiver.deliveries(pages[0].idempotency_key + "@")[0]
    assert "数据中心断电" in page.body["title"] + page.body["message"]

    # The same webhook again attaches to the emergency and starts nothing new.
    again = stack.signed_post(
        "/v1/emergencies/monitoring",
        {"dedup_key": dedup_key, "level": "I", "title": "数据中心断电 Data centre power loss"},
    )
    assert again.status_code == 202 and not again.json()["created"]

    # The run ends without waiting for the answers; the sweep carries the emergency on.
    final = stack.wait_final(flow_run_id)
    assert final.state.is_completed(), final.state
    answer(stack, dedup_key, "acknowledge")
    answer(stack, dedup_key, "resolve")
    sweep = stack.wait_final(
        stack.run_deployment("dispatch-pending-emergencies/dispatch-pending-emergencies"),
        timeout=240,  # behind a scheduled sweep, or a slot's lease (tests/e2e/stack.py start)
    )
    assert sweep.state.is_completed(), sweep.state
    closed = emergency(stack, public_id)
    assert closed.status == EmergencyStatus.closed
    assert closed.follow_up_issue_id is not None
    with stack.client() as client:
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=["emergency-response"])
            )
        )
    assert [r.id for r in runs if r.idempotency_key == public_id] == [run.id]


def test_operator_reports_an_issue_through_the_prefect_api(stack):
    title = f"跨部门数据共享受阻 Data sharing blocked {uuid.uuid4().hex[:6]}"
    run_id = stack.run_deployment(
        "report-issue/report-issue",
        {
            "form": {"title": title, "reporting_unit": "market-reg", "category": "general"},
            "operator": "e2e-operator",
        },
    )
    run = stack.wait_final(run_id)
    assert run.state.is_completed(), run.state

    issue = issue_by_title(stack, title)
    assert issue is not None
    rows = outbox(stack, kind="issue_reported", subject_id=issue.number)
    assert {r.audience for r in rows} == {"executive"}
    deliver_until(stack, rows)
    assert_delivered_once(stack, rows)


def test_monthly_review_deployment_writes_its_report(stack):
    run = stack.wait_final(
        stack.run_deployment("monthly-review/monthly-review", {"period": "2026-10"})
    )
    assert run.state.is_completed(), run.state
    folder = stack.reports_dir / "monthly" / "2026-10"
    files = sorted(p.name for p in folder.iterdir())
    assert {Path(f).suffix for f in files} >= {".html", ".md", ".xlsx"}, files
    assert all((folder / f).stat().st_size > 0 for f in files)


def test_report_issue_form_in_the_prefect_ui(sqlite_stack, tmp_path):
    """The real form, in headless Chromium: the README's screenshot.

    Set TASKFORCE_UPDATE_SCREENSHOTS=1 to copy it over docs/report-issue-form.png.
    """
    with sqlite_stack.client() as client:
        deployment = client.read_deployment_by_name("report-issue/report-issue")
    url = f"{sqlite_stack.ui_url}/deployments/deployment/{deployment.id}/run"
    shot = tmp_path / "report-issue-form.png"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium is needed: scripts/system-deps.sh installs it"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--virtual-time-budget=20000",
            f"--screenshot={shot}",
            "--window-size=1400,1000",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    wait_for("the screenshot", shot.exists, 5)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    if os.environ.get("TASKFORCE_UPDATE_SCREENSHOTS") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(shot, ROOT / "docs" / "report-issue-form.png")
