"""The emergency flows on a real Prefect test server: dispatch when Prefect returns,
the response flow to its follow-up issue, the operator's form, and the drill."""

from __future__ import annotations

import datetime as dt
import logging
import os
from decimal import Decimal

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from taskforce.budget.models import FiscalYear, LedgerEntry
from taskforce.clock import ManualClock, local_minute
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency import service
from taskforce.emergency.dispatch import dispatch_pending
from taskforce.emergency.forms import EmergencyIntake, ReserveDrawForm
from taskforce.emergency.models import (
    EarlyWarning,
    Emergency,
    EmergencyStatus,
    Level,
    WarningStatus,
)
from taskforce.errors import DomainError, NotFound
from taskforce.loop.models import Issue
from taskforce.notify.models import OutboxMessage
from taskforce.trail.models import TrailEntry
from tests.gateway.server import start_gateway
from tests.run_logs import run_records

__all__ = ["start_gateway"]  # the real gateway fixture, shared with tests/gateway

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


@pytest.fixture
def deployment(prefect_server):
    """The emergency-response deployment, registered with the test server (no worker runs it)."""
    from flows.emergency import emergency_response

    emergency_response.to_deployment(name="emergency-response").apply()
    return "emergency-response/emergency-response"


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def _open(engine, ctx, level="I", key="k"):
    with unit_of_work(engine) as s:
        return service.open_emergency(
            s,
            ctx,
            EmergencyIntake(level=Level(level), title="全市政务平台中断", working_group="wg:data"),
            source="monitoring",
            dedup_key=key,
            actor="test",
        )


def test_prefect_unreachable_then_back(engine, policy, deployment):
    """Level I while Prefect is down: persisted, leadership paged; dispatched once it is back."""
    from flows.emergency import PrefectDispatcher
    from tests.gateway.server import closed_port

    ctx = Context(policy=policy)
    down = PrefectDispatcher(
        deployment=deployment,
        timeout_seconds=5,
        connect_retries=0,
        api_url=f"http://127.0.0.1:{closed_port()}/api",
    )
    e = _open(engine, ctx)
    (outcome,) = dispatch_pending(engine, ctx, down)
    assert not outcome.dispatched and "ConnectError" in outcome.error
    assert len(outcome.paged) == 7
    with unit_of_work(engine) as s:
        assert service.state(s, e.emergency_id).status == EmergencyStatus.pending_dispatch
        actions = s.scalars(select(TrailEntry.action)).all()
    assert "emergency.dispatch_failed" in actions and "emergency.paged" in actions

    up = PrefectDispatcher(deployment=deployment, timeout_seconds=30, api_url=_api_url())
    (outcome,) = dispatch_pending(engine, ctx, up)
    assert outcome.dispatched
    # The emergency id is the idempotency key: asking again returns the same run.
    assert up(e.emergency_id) == outcome.flow_run_id
    with unit_of_work(engine) as s:
        st = service.state(s, e.emergency_id)
        assert st.status == EmergencyStatus.dispatched and st.flow_run_id == outcome.flow_run_id
        pages = s.scalar(select(func.count()).where(OutboxMessage.event_kind == "emergency_page"))
    assert pages == 7  # nobody paged twice
    assert dispatch_pending(engine, ctx, up) == []


def test_a_missing_deployment_is_named_with_the_api_it_was_looked_for_on(
    engine, policy, prefect_server
):
    """An API without the emergency-response deployment (e.g. PREFECT_API_URL unset: an
    empty temporary server): the outcome names the deployment and the API, not Prefect's
    "ObjectNotFound: None"; the emergency is still paged and stays pending."""
    from flows.emergency import PrefectDispatcher

    ctx = Context(policy=policy)
    missing = PrefectDispatcher(
        deployment="emergency-response/not-deployed", timeout_seconds=30, api_url=_api_url()
    )
    e = _open(engine, ctx, key="missing-deployment")
    (outcome,) = dispatch_pending(engine, ctx, missing)
    assert not outcome.dispatched and len(outcome.paged) == 7
    assert outcome.error.startswith(
        f"DeploymentMissing: no deployment 'emergency-response/not-deployed' on the Prefect "
        f"API at {_api_url()}"
    ), outcome.error
    assert "prefect --no-prompt deploy --all" in outcome.error
    with unit_of_work(engine) as s:
        assert service.state(s, e.emergency_id).status == EmergencyStatus.pending_dispatch


def test_sweep_flow_dispatches_pending(engine, policy, deployment):
    from flows.emergency import dispatch_pending_emergencies

    e = _open(engine, Context(policy=policy), key="sweep")
    with run_records() as records:
        result = dispatch_pending_emergencies()
        again = dispatch_pending_emergencies()  # nothing left to do: nothing said
    assert result["dispatched"] == [e.emergency_id]
    # What it did is in its log (an operator trial: only "Finished in state Completed()"),
    # once: the second run, with nothing to do, says nothing of its own.
    ours = [r.getMessage() for r in records if r.getMessage().split(" ", 1)[0].isdigit()]
    assert ours == [f"1 response runs started: {e.emergency_id}"], ours
    assert not any(again.values())
    with unit_of_work(engine) as s:
        assert service.state(s, e.emergency_id).flow_run_id


def test_the_sweep_sends_the_pages_of_its_escalations_at_once(
    engine, policy, deployment, tmp_path, monkeypatch
):
    """The sweep escalates every unanswered page now that no response run waits; its pages
    must not wait for the delivery run (a storm trial: 3-4 minutes behind a backlog)."""
    from flows.emergency import dispatch_pending_emergencies
    from taskforce.notify.models import DeliveryStatus

    monkeypatch.setenv("TASKFORCE_OUTBOX_FILE", str(tmp_path / "outbox.jsonl"))
    ctx = Context(policy=policy)
    e = _open(engine, ctx, level="II", key="escalated")
    dispatch_pending(engine, ctx, lambda public_id: "run-elsewhere")  # paged, sent at once
    with unit_of_work(engine) as s:
        s.scalars(select(Emergency)).one().next_escalation_at = ctx.now() - dt.timedelta(hours=1)

    result = dispatch_pending_emergencies()

    assert result["escalations"] == [f"{e.emergency_id}:repage:executive"]
    with unit_of_work(engine) as s:
        pages = s.execute(
            select(OutboxMessage.audience, OutboxMessage.status).where(
                OutboxMessage.event_kind == "emergency_page"
            )
        ).all()
    assert sorted(a for a, _ in pages) == ["member-E1", "member-E1", "member-E2", "member-E2"]
    assert {status for _, status in pages} == {DeliveryStatus.delivered}


def test_response_flow_runs_to_the_follow_up_issue(engine, policy, prefect_server):
    from flows.emergency import ResponseOptions, emergency_response

    ctx = Context(policy=policy)
    with unit_of_work(engine) as s:
        year = ctx.today().year
        s.add(FiscalYear(year=year, total_fen=10_000_000_00, reserve_fen=1_000_000_00))
    e = _open(engine, ctx, level="II")
    draw = ResponseOptions(
        reserve_draw=ReserveDrawForm(amount=Decimal("200000.00"), approver="E2"),
    )
    # Nobody answered yet: the run pages and leaves the rest to the sweep.
    first = emergency_response(e.emergency_id)
    assert first["status"] == "pending_dispatch" and first["follow_up_issue_id"] is None
    # A draw before anyone on call has confirmed the emergency is refused, and draws nothing.
    with pytest.raises(DomainError, match="options.reserve_draw: the emergency is not ack"):
        emergency_response(e.emergency_id, draw)
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 0
        service.acknowledge(s, ctx, e.emergency_id, actor="E1")
    drawn = emergency_response(e.emergency_id, draw)
    assert drawn["status"] == "acknowledged"
    assert drawn["reserve_draw"]["amount_fen"] == 20_000_000
    with unit_of_work(engine) as s:
        service.resolve(s, ctx, e.emergency_id, actor="E1")
    done = emergency_response(e.emergency_id, draw)  # the rerun draws nothing twice
    assert done["status"] == "closed" and done["follow_up_issue_id"]
    again = emergency_response(e.emergency_id, draw)
    assert again["note"] == "already closed"
    assert again["reserve_draw"] == drawn["reserve_draw"]  # the draw made, not a second
    # A draw first asked of a closed emergency is refused, not dropped without a word.
    other = _open(engine, ctx, level="II", key="closed-first")
    with unit_of_work(engine) as s:
        service.acknowledge(s, ctx, other.emergency_id, actor="E1")
        service.resolve(s, ctx, other.emergency_id, actor="E1")
        service.close_with_follow_up(s, ctx, other.emergency_id, actor="sweep")
    with pytest.raises(DomainError, match="emergency_id"):
        emergency_response(other.emergency_id, draw)
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(Issue)) == 2
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 1
        pages = s.scalars(
            select(OutboxMessage.audience).where(OutboxMessage.event_kind == "emergency_page")
        ).all()
    assert sorted(pages) == ["member-E1", "member-E2"]


def test_the_response_run_ends_without_waiting_and_the_sweep_carries_on(engine, policy, deployment):
    """A run per emergency that waited for the answers held a process for up to a day (a
    storm: hundreds). The run ends at once; an overdue page found at its start is
    escalated, and the sweep escalates later ones and opens the follow-up issue."""
    import threading

    from flows.emergency import dispatch_pending_emergencies, emergency_response

    ctx = Context(policy=policy)
    e = _open(engine, ctx, level="II", key="no-wait")
    (outcome,) = dispatch_pending(engine, ctx, lambda public_id: "run-elsewhere")
    assert outcome.paged == ("E1", "E2")
    with unit_of_work(engine) as s:  # the page went out an hour ago, unanswered
        emergency = s.scalars(select(Emergency)).one()
        emergency.next_escalation_at = ctx.now() - dt.timedelta(hours=1)

    results: list[dict] = []
    run = threading.Thread(
        target=lambda: results.append(emergency_response(e.emergency_id)), daemon=True
    )
    run.start()
    run.join(timeout=120)
    assert results, "the run was still waiting for an answer after 2 minutes"
    assert results[0]["status"] == "dispatched" and results[0]["follow_up_issue_id"] is None
    with unit_of_work(engine) as s:
        paged_by = s.scalars(
            select(TrailEntry.actor)
            .where(TrailEntry.action == "emergency.paged")
            .order_by(TrailEntry.id)
        ).all()
        service.acknowledge(s, ctx, e.emergency_id, actor="E1")
        service.resolve(s, ctx, e.emergency_id, actor="E1")
    assert len(paged_by) == 2 and paged_by[1] == "escalation"  # the overdue page, repeated
    with run_records() as records:
        swept = dispatch_pending_emergencies()
    assert swept["closed_with_follow_up"] == [e.emergency_id]
    assert any(
        r.getMessage().startswith("1 closed (resolved; a follow-up issue each")
        and r.getMessage().endswith(e.emergency_id)
        for r in records
    )
    with unit_of_work(engine) as s:
        assert service.state(s, e.emergency_id).follow_up_issue_id is not None


def test_the_response_flow_pages_nobody_after_the_dispatcher_paged(engine, policy, prefect_server):
    """The real flow runs as soon as it is dispatched (inside the dispatcher) and again
    (a rerun): the page the dispatcher sent before starting it is the only one."""
    from flows.emergency import emergency_response
    from taskforce.emergency.dispatch import dispatch

    ctx = Context(policy=policy)
    e = _open(engine, ctx, level="II", key="flow-after-page")
    runs = []

    def run_at_once(public_id: str) -> str:
        runs.append(emergency_response(public_id))
        return "in-process-run"

    outcome = dispatch(engine, ctx, e.emergency_id, run_at_once, actor="gateway:monitoring")
    runs.append(emergency_response(e.emergency_id))

    assert outcome.dispatched and outcome.paged == ("E1", "E2")
    assert [r["status"] for r in runs] == ["pending_dispatch", "dispatched"]
    with unit_of_work(engine) as s:
        pages = s.scalars(
            select(OutboxMessage.audience).where(OutboxMessage.event_kind == "emergency_page")
        ).all()
        paged_by = s.scalars(
            select(TrailEntry.actor).where(TrailEntry.action == "emergency.paged")
        ).all()
    assert sorted(pages) == ["member-E1", "member-E2"] and paged_by == ["gateway:monitoring"]


def test_operator_form_opens_an_emergency(engine, prefect_server):
    from flows.emergency import AnswerForm, OpenEmergencyForm, acknowledge_emergency, open_emergency

    result = open_emergency(
        OpenEmergencyForm(
            level=Level.III, title="审批系统故障", working_group="wg:approval", opened_by="E2"
        )
    )
    assert result["created"]
    with unit_of_work(engine) as s:
        e = s.scalars(select(Emergency)).one()
        assert e.source == "operator" and e.working_group == "wg:approval"
        # The trail names who opened it (the form's opened_by), not a generic "operator".
        opened_by = s.scalars(
            select(TrailEntry.actor).where(TrailEntry.action == "emergency.opened")
        ).all()
        assert opened_by == ["E2"]
    with pytest.raises(ValidationError, match="opened_by"):
        OpenEmergencyForm(level=Level.III, title="x", working_group="wg:approval", opened_by="")
    # An operator trial: "nobody-here" opened one, recorded as the actor three times.
    nobody = OpenEmergencyForm(
        level=Level.III, title="另一故障", working_group="wg:approval", opened_by="nobody-here"
    )
    with pytest.raises(NotFound, match="opened_by: no active member 'nobody-here'") as refused:
        open_emergency(nobody)
    assert refused.value.allowed.startswith("executive-office, or a member code")
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(Emergency)) == 1
    # Its title a page's: one visible line, no override or bell (an alert's text is cleaned,
    # not refused, as a webhook's is); an answer's note is typed, and refused.
    cleaned = OpenEmergencyForm(
        level=Level.III, title="第一行\u202e反转\n第二行\u0007", working_group="wg:approval"
    )
    assert cleaned.title == "第一行反转 第二行"
    assert (
        OpenEmergencyForm.model_validate(
            {**cleaned.model_dump(), "description": "a\u202eb\nc"}
        ).description
        == "ab\nc"
    )
    with pytest.raises(ValidationError, match="note"):
        AnswerForm(emergency_id=result["emergency_id"], actor="W1", note="ok\u202e\u0007")
    # The id the operator needs next is on the run's artifact, not only in the result.
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts()
    shown = [a for a in artifact if a.key == f"emergency-{result['emergency_id']}"]
    assert shown and f"`{result['emergency_id']}`" in shown[0].data
    # An acknowledgement stops the escalation: an unknown name is refused, nothing changes.
    with pytest.raises(NotFound, match="actor: no active member 'W9'") as refused:
        acknowledge_emergency(AnswerForm(emergency_id=result["emergency_id"], actor="W9"))
    assert "E1" in str(refused.value) and "W1" in str(refused.value)  # the codes there are
    with unit_of_work(engine) as s:
        assert s.scalars(select(Emergency.status)).one() != EmergencyStatus.acknowledged
        assert not s.scalars(
            select(TrailEntry.id).where(TrailEntry.action == "emergency.acknowledged")
        ).all()
    # W3 of wg:data is a member, but not of a group this emergency pages; W4 (wg:data,
    # cleared for public material) neither. Refused by name, with who may.
    with pytest.raises(DomainError, match="W3 may not answer emergency") as refused:
        acknowledge_emergency(AnswerForm(emergency_id=result["emergency_id"], actor="W3"))
    assert refused.value.field == "actor"
    assert "wg:approval or executive or leadership" in refused.value.allowed
    assert "W1 钱伟" in refused.value.allowed and "W3" not in refused.value.allowed
    status = acknowledge_emergency(AnswerForm(emergency_id=result["emergency_id"], actor="W1"))
    assert status == "acknowledged"


def test_operator_form_raising_the_level_pages_the_new_lead_at_once(
    engine, prefect_server, tmp_path, monkeypatch
):
    """A repeat through the form that raises the level: the leadership group's page goes out
    in the run, not with the next delivery run, and the run says what happened."""
    from benchmarks.loopback import Receiver, make_config
    from flows.emergency import OpenEmergencyForm, open_emergency

    receiver = Receiver()
    monkeypatch.setenv("TASKFORCE_CONFIG_DIR", str(make_config(tmp_path, receiver.url, {})))
    try:
        form = {"title": "审批系统故障", "working_group": "wg:approval", "dedup_key": "approval"}
        first = open_emergency(OpenEmergencyForm(level=Level.III, **form))
        raised = open_emergency(OpenEmergencyForm(level=Level.I, **form))
        assert raised["emergency_id"] == first["emergency_id"] and not raised["created"]
        assert raised["raised_from"] == "III" and first["raised_from"] is None
        leaders = {
            m.delivery.split("@")[0].rsplit(":", 1)[1]
            for m in receiver.deliveries(f"emergency:{raised['emergency_id']}:page")
        }
        assert {f"member-L{i}" for i in range(1, 8)} <= leaders
    finally:
        receiver.stop()
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        shown = [
            a
            for a in client.read_latest_artifacts()
            if a.key == f"emergency-{raised['emergency_id']}"
        ]
    assert shown and "由III级升为I级" in shown[0].data


def test_drill_in_process(engine, prefect_server, monkeypatch):
    from flows.drill import DrillOptions, quarterly_drill
    from tests.gateway.server import closed_port

    monkeypatch.delenv("TASKFORCE_WEBHOOK_SECRET_DRILL", raising=False)
    results = []
    said = _logged_by_runs(
        lambda: results.append(
            quarterly_drill(
                DrillOptions(gateway_url=f"http://127.0.0.1:{closed_port()}", wait_minutes=0)
            )
        )
    )
    result = results[0]
    assert result["is_drill"] and result["path"].startswith("in process")
    # Its resolution's line does not promise a follow-up issue a drill never gets.
    resolved = [m for m in said if "resolved by drill" in m]
    assert resolved and all("a drill, closed without a follow-up issue" in m for m in resolved)
    # Paged by the dispatcher before it started the response run (which no worker runs
    # here), or when dispatch failed: either way the report tells.
    assert "time to first page" in result["report"]
    with unit_of_work(engine) as s:
        e = s.scalars(select(Emergency)).one()
        assert e.is_drill and e.status == EmergencyStatus.closed and e.follow_up_issue_id is None
        assert all(s.scalars(select(OutboxMessage.is_drill)))
        assert s.scalar(select(func.count()).select_from(Issue)) == 0


def test_drill_through_the_gateway(engine, policy, prefect_server, start_gateway, monkeypatch):
    from flows.drill import DrillOptions, quarterly_drill
    from tests.gateway.server import DRILL_SECRET

    monkeypatch.setenv("TASKFORCE_WEBHOOK_SECRET_DRILL", DRILL_SECRET)
    gateway = start_gateway(Context(policy=policy), environ=dict(os.environ))
    result = quarterly_drill(DrillOptions(gateway_url=gateway.url, wait_minutes=0))
    assert result["path"].startswith("signed request to the gateway")
    assert result["seconds_to_first_page"] is not None  # the gateway could not dispatch: it paged
    with unit_of_work(engine) as s:
        e = s.scalars(select(Emergency)).one()
        assert e.is_drill and e.source == policy.emergency.drill.source
        actions = s.scalars(
            select(TrailEntry.action).where(TrailEntry.subject_id == e.public_id)
        ).all()
    assert actions[0] == "emergency.opened" and actions[-1] == "emergency.closed"


def test_warning_forms(engine, prefect_server):
    from flows.warnings import HandleWarningForm, RaiseWarningForm, handle_warning, raise_warning
    from taskforce.errors import NotFound
    from taskforce.loop.forms import ReportIssueForm
    from taskforce.loop.report import report_issue

    with unit_of_work(engine) as s:
        number = report_issue(
            s,
            Context.default(),
            ReportIssueForm(title="跨区协调受阻", reporting_unit="tax"),
            actor="E1",
        ).issue_number
    # A warning about a record that does not exist is refused, naming the field.
    for subject_type, subject_id in (("issue", "TF-2026-09999"), ("task", "whatever")):
        with pytest.raises(NotFound, match="subject_id"):
            raise_warning(
                RaiseWarningForm(
                    colour="yellow",
                    title="笔误",
                    subject_type=subject_type,
                    subject_id=subject_id,
                    actor="E1",
                )
            )
    with pytest.raises(ValidationError, match="subject_type"):
        RaiseWarningForm(
            colour="red", title="笔误", subject_type="isue", subject_id="1", actor="E1"
        )
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(EarlyWarning)) == 0
    form = RaiseWarningForm(
        colour="orange", title="跨区协调受阻", subject_id=number, actor="E1", dedup_key="x"
    )
    with run_records() as records:
        first = raise_warning(form)
        assert first["raised"] and raise_warning(form) == {"warning_id": None, "raised": False}
    said = [r.getMessage() for r in records]  # ids and colours: the title may be classified
    assert f"warning {first['warning_id']} raised (orange) on issue {number} by E1" in said
    assert f"no new warning: one of the same cause is still open on issue {number}" in said
    assert not any("跨区协调受阻" in line for line in said)
    # The same key for a different warning is refused, not swallowed; an unknown raiser too.
    other = RaiseWarningForm(
        colour="red", title="另一件事", subject_id=number, actor="E1", dedup_key="x"
    )
    with pytest.raises(DomainError, match="dedup_key: 'x' was already used for warning"):
        raise_warning(other)
    with pytest.raises(NotFound, match="actor: no active member 'nobody'"):
        raise_warning(form.model_copy(update={"actor": "nobody", "dedup_key": "y"}))
    # A secret warning's title stays out of the refusal (a log line in the Prefect UI).
    hidden = RaiseWarningForm(
        **{**form.model_dump(), "title": "涉密事项", "classification": "secret", "dedup_key": "s"}
    )
    assert raise_warning(hidden)["raised"]
    with pytest.raises(
        DomainError, match=r"'s' was already used for warning \d+ \(orange, issue"
    ) as refused:
        raise_warning(RaiseWarningForm(**{**hidden.model_dump(), "colour": "red"}))
    assert "涉密事项" not in str(refused.value)
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(EarlyWarning)) == 2
    # Orange is the leadership group's to handle (§5): the executive director may not.
    with pytest.raises(DomainError, match=r"actor: E1 may not handle warning \d+ \(orange\)"):
        handle_warning(HandleWarningForm(warning_id=first["warning_id"], actor="E1"))
    # Handling stops the escalation: an unknown handler is refused and nothing changes.
    with pytest.raises(NotFound, match="actor: no active member 'L9'"):
        handle_warning(HandleWarningForm(warning_id=first["warning_id"], actor="L9"))
    with pytest.raises(NotFound, match=r"warning_id: no warning 999 \(allowed: a warning's"):
        handle_warning(HandleWarningForm(warning_id=999, actor="L1"))
    with unit_of_work(engine) as s:
        assert s.get(EarlyWarning, first["warning_id"]).status == WarningStatus.open
    with run_records() as records:
        handled = HandleWarningForm(warning_id=first["warning_id"], actor=" L1 ")
        assert handle_warning(handled) == "handled"
        # Again, by another: nothing changes, and the log says so (it said "is now handled
        # (by L2)": an operator trial).
        assert handle_warning(HandleWarningForm(warning_id=first["warning_id"], actor="L2"))
    said = [r.getMessage() for r in records]
    n = first["warning_id"]
    assert f"warning {n} is now handled (by L1)" in said, said
    assert not any(f"warning {n} is now handled (by L2)" in line for line in said), said
    assert any(
        line.startswith(f"warning {n} was handled already; nothing changed") for line in said
    )
    # About a secret issue, a warning below secret is refused (its title speaks of the
    # issue, and an internal warning is announced to internal readers); secret is taken.
    with unit_of_work(engine) as s:
        hidden_issue = report_issue(
            s,
            Context.default(),
            ReportIssueForm(title="涉密问题", reporting_unit="tax", classification="secret"),
            actor="E1",
        ).issue_number
    about = RaiseWarningForm(colour="yellow", title="进展受阻", subject_id=hidden_issue, actor="E1")
    with pytest.raises(
        DomainError,
        match=rf"classification: issue {hidden_issue} is secret; a warning about it may not be "
        r"internal \(allowed: secret or higher\)",
    ):
        raise_warning(about)
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(EarlyWarning)) == 2
    assert raise_warning(RaiseWarningForm(**{**about.model_dump(), "classification": "secret"}))[
        "raised"
    ]


def test_deadline_form(engine, policy, prefect_server):
    from flows.emergency import DeadlineForm, record_emergency_deadline

    e = _open(engine, Context(policy=policy), level="I", key="deadline")
    unknown = DeadlineForm(emergency_id=e.emergency_id, deadline="command_formed", actor="nobody")
    with pytest.raises(NotFound, match="actor: no active member 'nobody'"):
        record_emergency_deadline(unknown)
    form = DeadlineForm(emergency_id=e.emergency_id, deadline="command_formed", actor="L1")
    assert record_emergency_deadline(form) is True  # the refused call recorded nothing
    assert record_emergency_deadline(form) is False  # recorded once


def test_the_dispatchers_tls_context_is_built_once_as_prefect_settings_say():
    """One CA bundle load per dispatcher, not two per emergency; verified unless Prefect's
    own setting says otherwise (the connect-retry transport used httpx's defaults)."""
    import ssl

    from prefect.settings import PREFECT_API_TLS_INSECURE_SKIP_VERIFY, temporary_settings

    from flows.emergency import PrefectDispatcher

    verified = PrefectDispatcher(deployment="a/b", timeout_seconds=1, connect_retries=0)
    assert verified._tls_context() is verified._tls_context()
    assert verified._tls_context().verify_mode == ssl.CERT_REQUIRED
    with temporary_settings({PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True}):
        insecure = PrefectDispatcher(deployment="a/b", timeout_seconds=1, connect_retries=0)
        assert insecure._tls_context().verify_mode == ssl.CERT_NONE


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_refused_form_is_one_line_per_level_in_its_runs_log_not_a_traceback(
    engine, prefect_server
):
    """An operator trial found 134 log lines for an unknown member on the acknowledge form:
    the message five times and three tracebacks, the last headed "Engine execution exited
    with unexpected exception". A DomainError is now logged without its traceback."""
    from flows.emergency import AnswerForm, OpenEmergencyForm, acknowledge_emergency, open_emergency

    result = open_emergency(
        OpenEmergencyForm(
            level=Level.III, title="审批系统故障", working_group="wg:approval", opened_by="E2"
        )
    )
    captured = _Records()
    loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs")]
    for logger in loggers:
        logger.addHandler(captured)
    try:
        state = acknowledge_emergency(
            AnswerForm(emergency_id=result["emergency_id"], actor="W9"), return_state=True
        )
    finally:
        for logger in loggers:
            logger.removeHandler(captured)
    assert state.is_failed()
    errors = [r for r in captured.records if r.levelno >= logging.ERROR]
    assert errors, [r.getMessage() for r in captured.records]
    assert all(r.exc_info is None for r in errors), [r.getMessage() for r in errors]
    # Each error line still says what was refused and why.
    assert all("actor: no active member 'W9'" in r.getMessage() for r in errors), [
        r.getMessage() for r in errors
    ]


def _logged_by_runs(call) -> list[str]:
    """What `call` logged at INFO to its flow and task runs' loggers (the run's Logs tab)."""
    with run_records() as records:
        call()
    return [r.getMessage() for r in records if r.levelno == logging.INFO]


def _recorded(engine, public_id: str, column: str):
    """One of an emergency's recorded times."""
    with unit_of_work(engine) as s:
        return getattr(
            s.scalars(select(Emergency).where(Emergency.public_id == public_id)).one(), column
        )


def test_an_answer_says_in_its_runs_log_who_gave_it_or_that_it_was_given_before(
    engine, policy, prefect_server
):
    """An operator trial: a successful acknowledge-emergency run's log said nothing of who
    acknowledged, nor whether someone had before (the trail records only the first)."""
    from flows.emergency import (
        AnswerForm,
        DeadlineForm,
        acknowledge_emergency,
        record_emergency_deadline,
        resolve_emergency,
    )

    e = _open(engine, Context(policy=policy), level="I", key="who-answered")
    eid = e.emergency_id

    def answer(flow, actor):
        return _logged_by_runs(lambda: flow(AnswerForm(emergency_id=eid, actor=actor)))

    assert any(
        f"{eid} acknowledged by L1: escalation stopped" in m
        for m in answer(acknowledge_emergency, "L1")
    )
    again = answer(acknowledge_emergency, "L2")
    # In the office's time, named: the run's own log lines are stamped in UTC beside it.
    at = local_minute(_recorded(engine, eid, "acknowledged_at"), policy.timezone)
    assert f"{eid} was already acknowledged ({at} {policy.timezone}); nothing changed" in again
    assert not any("acknowledged by" in m for m in again)
    deadline = DeadlineForm(emergency_id=eid, deadline="command_formed", actor="L1")
    first = _logged_by_runs(lambda: record_emergency_deadline(deadline))
    assert any(f"{eid}: deadline command_formed recorded as met by L1" in m for m in first)
    second = _logged_by_runs(lambda: record_emergency_deadline(deadline))
    assert f"{eid}: deadline command_formed was already met; L1's record changed nothing" in second
    resolved = answer(resolve_emergency, "L1")
    assert any(
        f"{eid} resolved by L1: the sweep closes it and opens its follow-up issue" in m
        for m in resolved
    )
    assert any(f"{eid} was already resolved (" in m for m in answer(resolve_emergency, "L2"))
    # Resolving sets the acknowledgement's time too: an acknowledgement now says resolved.
    late = answer(acknowledge_emergency, "L3")
    assert any(f"{eid} was already resolved (" in m for m in late), late
    with unit_of_work(engine) as s:
        who = s.scalars(
            select(TrailEntry.actor)
            .where(TrailEntry.action.in_(["emergency.acknowledged", "emergency.resolved"]))
            .order_by(TrailEntry.id)
        ).all()
    assert who == ["L1", "L1"]  # the second answers changed nothing


def test_characters_two_emergencies_share_are_refused_by_every_form_alike_at_office_time(
    engine, policy, prefect_server
):
    """An operator trial: the acknowledge form and the reserve draw's refused first characters
    two ids share in different words (the one lower-cased and counted, the other "several"),
    and listed the emergencies' opening times in UTC where pages show the office's time."""
    from flows.emergency import AnswerForm, acknowledge_emergency
    from taskforce.budget.forms import ReserveDrawForm as BudgetDrawForm
    from taskforce.budget.service import draw_reserve

    clock = ManualClock(dt.datetime(2026, 3, 9, 1, 2, 3, tzinfo=dt.UTC))
    ctx = Context(policy=policy, clock=clock)
    first = _open(engine, ctx, key="shared-1").emergency_id
    second = _open(engine, ctx, key="shared-2").emergency_id  # the same instant: same prefix
    typed = first[:8].upper()
    with pytest.raises(DomainError) as acknowledging:
        acknowledge_emergency(AnswerForm(emergency_id=typed, actor="W1"))
    form = BudgetDrawForm(
        fiscal_year=2026,
        emergency=typed,
        entry_date=dt.date(2026, 3, 9),
        amount=Decimal("1000.00"),
        payee="Pumps Ltd",
        description="pumps",
        voucher="R-1",
        approver="E1",
    )
    with unit_of_work(engine) as s, pytest.raises(DomainError) as drawing:
        draw_reserve(s, ctx, form, actor="E1")
    said = {acknowledging.value.field: acknowledging.value, drawing.value.field: drawing.value}
    assert set(said) == {"emergency_id", "emergency"}
    assert said["emergency_id"].message == said["emergency"].message
    assert said["emergency_id"].allowed == said["emergency"].allowed
    assert f"{first[:8]!r} begins the ids of 2 emergencies" in said["emergency"].message
    opened = f"opened 2026-03-09 09:02:03 {policy.timezone}"  # 01:02:03 UTC in Shanghai
    allowed = said["emergency"].allowed
    assert first in allowed and second in allowed and allowed.count(opened) == 2, allowed
    assert "UTC" not in allowed
    with unit_of_work(engine) as s:
        assert not s.scalars(
            select(Emergency.acknowledged_at).where(Emergency.acknowledged_at.is_not(None))
        ).all()
        assert s.scalar(select(func.count(LedgerEntry.id))) == 0
