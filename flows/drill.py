"""quarterly-drill (季度演练, SPEC §3): a drill emergency through the real path, and its report.

The drill is a signed request to the running gateway (the same path a
monitoring system takes); when the gateway is not running, or no drill secret
is set, it is opened in process and dispatched the same way. It is marked as
a drill everywhere (emergency, trail, outbox). After waiting for an
acknowledgement the flow writes the drill report as a markdown artifact —
time to first page, time to acknowledgement, escalations, against the
deadlines — and closes the drill (no follow-up issue: the report is its
follow-up).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid

import httpx
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from pydantic import BaseModel, ConfigDict, Field

from flows.emergency import default_dispatcher
from flows.parameters import described
from taskforce.calendar import WorkCalendar
from taskforce.context import Context
from taskforce.emergency.drill import render_markdown
from taskforce.emergency.forms import EmergencyIntake
from taskforce.emergency.models import Level
from taskforce.emergency.service import UNACKNOWLEDGED
from taskforce.gateway.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, secret_env_name, sign
from taskforce.policy import load_policy
from tasks import emergency as t

HEALTH_TIMEOUT_SECONDS = (
    3.0  # a gateway that cannot answer its health check in this is "not running"
)


class DrillOptions(BaseModel):
    """演练参数 — defaults come from config/taskforce.yaml (emergency.drill, gateway)."""

    model_config = ConfigDict(extra="forbid")

    gateway_url: str | None = Field(
        None,
        title="Gateway URL",
        description="Where the gateway runs; default http://<gateway.host>:<gateway.port>.",
        pattern=r"^https?://",
    )
    wait_minutes: int | None = Field(
        None, ge=0, le=1_440, title="Wait for acknowledgement (min)", description="Default: config."
    )
    poll_seconds: int | None = Field(None, ge=1, le=3_600, title="Poll every (s)")


def _send_to_gateway(url: str, source: str, body: bytes, secret: str) -> str:
    timestamp = str(int(time.time()))
    response = httpx.post(
        f"{url.rstrip('/')}/v1/emergencies/{source}",
        content=body,
        headers={
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        },
        timeout=30,
    )
    if response.status_code != 202:
        # The real path refused the drill: that is the drill's finding, not a reason to fall back.
        raise RuntimeError(f"the gateway refused the drill: {response.status_code} {response.text}")
    return response.json()["emergency_id"]


def _gateway_running(url: str) -> bool:
    try:
        return httpx.get(f"{url.rstrip('/')}/healthz", timeout=HEALTH_TIMEOUT_SECONDS).is_success
    except httpx.HTTPError:
        return False


def drill_day(today: dt.date, first_day: int, calendar: WorkCalendar) -> dt.date:
    """The month's drill day: the first working day on or after `first_day` (holidays and
    make-up days of the Chinese calendar). The schedule fires every day of a range from
    `first_day` (config reviews.quarterly_drill); the runs on other days end at once. A
    cron of one day drilled on 15 February 2026, 15 August and 15 November: a holiday and
    two weekends (an operator trial), paging on-call people on their day off."""
    day = today.replace(day=first_day)
    while not calendar.is_workday(day):
        day += dt.timedelta(days=1)
    return day


def _first_day_of(cron: str) -> int:
    """The first day of month of a cron's day field ("15-28" → 15; "15" → 15)."""
    return int(cron.split()[2].split(",")[0].split("-")[0])


def _scheduled() -> bool:
    """Started by the deployment's schedule, not by an operator (who drills when asked)."""
    context = FlowRunContext.get()
    return bool(context and context.flow_run and context.flow_run.auto_scheduled)


@flow(name="quarterly-drill", log_prints=True)
def quarterly_drill(
    options: DrillOptions = described(
        DrillOptions(), "演练选项 Drill options: the defaults come from config (emergency.drill)."
    ),
) -> dict:
    """Run the quarterly emergency drill and write its report."""
    logger = get_run_logger()
    policy = load_policy()
    if _scheduled():
        ctx = Context.default(policy=policy)
        day = drill_day(ctx.today(), _first_day_of(policy.reviews.quarterly_drill), ctx.calendar)
        if ctx.today() != day:
            logger.info("not the drill day: this quarter's is %s (a working day)", day)
            return {"drill_day": day.isoformat(), "drilled": False}
    drill, gateway = policy.emergency.drill, policy.gateway
    url = options.gateway_url or f"http://{gateway.host}:{gateway.port}"
    dedup_key = f"drill:{uuid.uuid4()}"
    intake = EmergencyIntake(
        level=Level(drill.level),
        title=drill.title,
        description="季度演练：请按真实事件确认呼叫，无需其他处置。Quarterly drill: acknowledge the page as for a real one; nothing else is needed.",
        working_group=drill.working_group,
        details={"drill": True},
    )
    secret = os.environ.get(secret_env_name(gateway.native.secret_env_prefix, drill.source))
    if secret and _gateway_running(url):
        body = json.dumps(
            {**intake.model_dump(mode="json"), "dedup_key": dedup_key, "drill": True}
        ).encode()
        public_id = _send_to_gateway(url, drill.source, body, secret)
        path = f"signed request to the gateway at {url}"
    else:
        reason = "no drill secret set" if not secret else f"gateway at {url} not running"
        logger.warning("drill in process: %s", reason)
        result = t.open_emergency(
            intake, source=drill.source, dedup_key=dedup_key, actor="drill", is_drill=True
        )
        public_id = result.emergency_id
        t.dispatch_emergency(public_id, default_dispatcher(), "drill")
        path = f"in process ({reason})"

    wait_minutes = options.wait_minutes if options.wait_minutes is not None else drill.wait_minutes
    poll = options.poll_seconds or drill.poll_seconds
    deadline = time.monotonic() + wait_minutes * 60
    while t.read_emergency(public_id).status in UNACKNOWLEDGED:
        t.escalate(public_id)
        if time.monotonic() >= deadline:
            break
        time.sleep(poll)

    report = t.make_drill_report(public_id, path)
    markdown = render_markdown(report)
    create_markdown_artifact(
        markdown, key="emergency-drill-report", description="Quarterly emergency drill report"
    )
    t.resolve(public_id, "drill", "drill over")
    t.close_with_follow_up(public_id, "drill")
    return {
        "emergency_id": public_id,
        "path": path,
        "is_drill": report.is_drill,
        "seconds_to_first_page": report.seconds_to_first_page,
        "seconds_to_acknowledge": report.seconds_to_acknowledge,
        "escalations": report.escalations,
        "report": markdown,
    }
