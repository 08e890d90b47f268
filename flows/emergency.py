"""Emergency response (应急响应, SPEC §5) as Prefect flows.

* `emergency-response` (one run per emergency, started by the gateway with the
  emergency's id as idempotency key, after the gateway paged on-call itself):
  page on-call if nobody has → escalate if a page is overdue → reserve draw (a run
  started by hand) → the follow-up issue if resolved. It does not wait: the sweep
  carries the emergency on. It reads the state from the database at every step, so a
  rerun continues where the last run stopped and does nothing twice.
* `open-emergency`: an operator opens an emergency from the UI form.
* `acknowledge-emergency` / `resolve-emergency`: the operator's UI forms for
  the two answers a page waits for (the webhook actions do the same).
* `dispatch-pending-emergencies`: the sweep — starts runs for emergencies the
  gateway could not dispatch, escalates unacknowledged pages, missed level
  deadlines and overdue warnings, and closes resolved emergencies with their
  follow-up issue.

Acknowledgement is read from the database, not from a paused run's input: it may
come from a webhook as well as from the UI, and the sweep reads the one place both
write to.
"""

from __future__ import annotations

import re
import ssl
import uuid
from typing import Annotated

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from flows.parameters import described, form_of
from taskforce.db import unit_of_work
from taskforce.emergency.forms import EmergencyIntake, ReserveDrawForm
from taskforce.emergency.models import EmergencyStatus
from taskforce.emergency.paging import rows_to_send
from taskforce.emergency.queries import ID_IN_WORDS, SHORT_ID_MIN, UUID_LENGTH
from taskforce.emergency.service import UNACKNOWLEDGED
from taskforce.errors import DomainError, NotFound
from taskforce.org.service import active_member
from taskforce.policy import load_policy
from taskforce.text import Text
from tasks import emergency as t
from tasks.notify import deliver_pending_notifications

_ID_PATTERN = r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{0,4}){0,3}(-[0-9a-fA-F]{0,12})?$"


def _an_emergency_id(value: object) -> object:
    """Refuse what is not an id (or its first characters) in words, before the pattern
    (kept for the UI's form) would refuse it with the pattern alone."""
    if isinstance(value, str) and not re.fullmatch(_ID_PATTERN, value.strip()):
        raise ValueError(
            f"not an emergency id ({_what_is_wrong(value.strip())}); allowed: {ID_IN_WORDS}"
        )
    return value


def _what_is_wrong(typed: str) -> str:
    if len(typed) < SHORT_ID_MIN:
        return f"{len(typed)} characters, fewer than {SHORT_ID_MIN}"
    if len(typed) > UUID_LENGTH:
        return f"{len(typed)} characters, more than {UUID_LENGTH}"
    if odd := next((c for c in typed if c not in "0123456789abcdefABCDEF-"), None):
        return f"{odd!r} is neither a hexadecimal digit nor a dash"
    return "its dashes are not where an id has them"


EmergencyId = Annotated[
    str,
    BeforeValidator(_an_emergency_id),
    AfterValidator(str.lower),
    Field(
        # A whole id, or its first 8 characters or more (taskforce/emergency/queries.py), in
        # either case (a UUID's hex digits are; ids pasted from other tools may be upper).
        pattern=_ID_PATTERN,
        max_length=36,
        title="Emergency id 应急事项编号",
        description="The emergency's id as its pages, the gateway's answer or `taskforce "
        "emergency list` show it, e.g. 019ac3f2-5b1e-7c40-9a8d-2f6e1b7c9d03; its first 8 "
        "characters or more are enough when no other emergency's id begins with them.",
    ),
]


class DeploymentMissing(LookupError):
    """The Prefect API answers, but the emergency-response deployment is not on it."""

    def __init__(self, deployment: str, api_url: str) -> None:
        super().__init__(
            f"no deployment {deployment!r} on the Prefect API at {api_url}: deploy it "
            '(`prefect --no-prompt deploy --all`, README "Work pools and deployments"), and '
            "set PREFECT_API_URL to that server (unset, Prefect starts an empty temporary "
            "one). The emergency stays pending and paged; the next sweep tries again"
        )


class PrefectDispatcher:
    """Starts the `emergency-response` deployment for an emergency through the Prefect API.

    The emergency's public id is the flow run's idempotency key, so a second
    call for the same emergency returns the run the first one created.
    """

    def __init__(
        self,
        *,
        deployment: str,
        timeout_seconds: float,
        connect_retries: int | None = None,
        api_url: str | None = None,
    ) -> None:
        self.deployment, self.timeout, self.api_url = deployment, timeout_seconds, api_url
        self.connect_retries = connect_retries
        self._tls: ssl.SSLContext | None = None

    def _tls_context(self) -> ssl.SSLContext:
        """The TLS context Prefect's client would build, built once per dispatcher.

        Why: a client builds one per call (loading the CA bundle, ~40 ms of CPU), which made
        a burst of 80 emergencies wait seconds on the dispatch thread; and the transport
        below must verify the API as Prefect's settings say, not with httpx's defaults."""
        if self._tls is None:
            import certifi
            from prefect.settings import (
                PREFECT_API_SSL_CERT_FILE,
                PREFECT_API_TLS_INSECURE_SKIP_VERIFY,
            )

            if PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value():
                tls = ssl.create_default_context()
                tls.check_hostname = False
                tls.verify_mode = ssl.CERT_NONE
            else:
                tls = ssl.create_default_context(
                    cafile=PREFECT_API_SSL_CERT_FILE.value() or certifi.where()
                )
            self._tls = tls
        return self._tls

    def _client(self):
        import httpx
        from prefect.client.orchestration import SyncPrefectClient, get_client
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY

        settings: dict = {"timeout": self.timeout, "verify": self._tls_context()}
        if self.connect_retries is not None:
            # Prefect's own default retries a refused connection with backoff (~1.5 s);
            # an emergency pages directly instead, and the sweep tries again.
            settings["transport"] = httpx.HTTPTransport(
                retries=self.connect_retries, verify=settings["verify"]
            )
        if self.api_url is None:
            return get_client(httpx_settings=settings, sync_client=True)
        return SyncPrefectClient(
            self.api_url,
            api_key=PREFECT_API_KEY.value(),
            auth_string=PREFECT_API_AUTH_STRING.value(),
            httpx_settings=settings,
        )

    def __call__(self, public_id: str) -> str:
        from prefect.exceptions import ObjectNotFound

        with self._client() as client:
            try:
                deployment = client.read_deployment_by_name(self.deployment)
            except ObjectNotFound:  # its own text is "None": say what is missing, and where
                raise DeploymentMissing(self.deployment, str(client.api_url)) from None
            run = client.create_flow_run_from_deployment(
                deployment.id,
                parameters={"emergency_id": public_id},
                idempotency_key=public_id,
                tags=["emergency"],
            )
        return str(run.id)


def default_dispatcher() -> PrefectDispatcher:
    gateway = load_policy().gateway
    return PrefectDispatcher(
        deployment=gateway.deployment,
        timeout_seconds=gateway.dispatch_timeout_seconds,
        connect_retries=gateway.dispatch_connect_retries,
    )


class ResponseOptions(BaseModel):
    """What an operator may add to a response run started by hand."""

    model_config = ConfigDict(extra="forbid")

    reserve_draw: ReserveDrawForm | None = Field(
        None,
        title="Reserve draw 应急预留动用",
        description="Draw on the emergency reserve: only for an acknowledged emergency "
        "(acknowledge-emergency first).",
    )


@flow(name="emergency-response", log_prints=True)
def emergency_response(
    emergency_id: EmergencyId = described(
        ..., "应急事件编号 Emergency id: the id the gateway or open-emergency answered."
    ),
    options: ResponseOptions = described(
        ResponseOptions(), "运行选项 Run options: a reserve draw, for a run started by hand."
    ),
) -> dict:
    """Take one emergency as far as it can go now: page, escalate, draw, follow up.

    The run does not wait for the answers. Waiting held a process per emergency for up to
    a day, and a storm of alerts meant hundreds of them (an operator trial saw `database
    is locked` on the Prefect server's SQLite with about twenty); the every-minute
    `dispatch-pending-emergencies` sweep escalates unacknowledged pages and closes resolved
    emergencies with their follow-up issue on the same clock the run kept, so it carries
    every emergency on from here."""
    actor = "flow:emergency-response"
    st = t.read_emergency(emergency_id)
    emergency_id = st.public_id  # whole, if a run started by hand was given its first characters
    if st.status == EmergencyStatus.closed:
        # A draw asked of a closed emergency is answered: the one drawn before, or refused.
        drawn = _draw(emergency_id, options.reserve_draw, actor) if options.reserve_draw else None
        return {
            "emergency_id": emergency_id,
            "status": st.status.value,
            "note": "already closed",
            "reserve_draw": drawn,
        }
    # Normally paged already: the dispatcher pages before it starts this run (a flow-run
    # process takes seconds to start). This step pages only an emergency it did not page,
    # e.g. one whose dispatcher died between the intake commit and the page.
    first = t.page_on_call(emergency_id, actor)
    if first is not None:
        # Pages must not wait for the every-minute delivery run; only this page's rows.
        deliver_pending_notifications(trail_entry_ids=[first.trail_entry_id])
    if t.escalate(emergency_id):  # a run started late (a queue, a rerun) finds one due
        deliver_pending_notifications(limit=200)
    drawn = None
    if options.reserve_draw is not None:
        drawn = _draw(emergency_id, options.reserve_draw, actor)
    st = t.read_emergency(emergency_id)
    if st.status == EmergencyStatus.resolved:
        st = t.close_with_follow_up(emergency_id, actor)
    result = {
        "emergency_id": emergency_id,
        "status": st.status.value,
        "follow_up_issue_id": st.follow_up_issue_id,
        "reserve_draw": drawn,
    }
    create_markdown_artifact(
        _summary(result),
        key=f"emergency-{emergency_id[:8]}",
        description="Emergency response summary",
    )
    return result


def _draw(emergency_id: str, form: ReserveDrawForm, actor: str) -> dict:
    """The draw, for an acknowledged emergency only: someone on call has confirmed it."""
    status = t.read_emergency(emergency_id).status
    if status in UNACKNOWLEDGED:
        raise DomainError(
            "the emergency is not acknowledged yet (status "
            f"{status.value}); a member on call acknowledges it first (acknowledge-emergency), "
            "then start this run again or draw with budget-reserve-draw",
            field="options.reserve_draw",
        )
    return t.draw_reserve(emergency_id, form, actor)


def _summary(result: dict) -> str:
    lines = [f"- **{k}**: {v}" for k, v in result.items()]
    if result["status"] != EmergencyStatus.closed.value:
        lines.append(
            "- 后续 next: dispatch-pending-emergencies (every minute) escalates unanswered "
            "pages and opens the follow-up issue once the emergency is resolved"
        )
    return "\n".join(lines)


OFFICE = "executive-office"  # an emergency opened by the executive office, no one named


class OpenEmergencyForm(EmergencyIntake):
    """开启应急事项 — open an emergency by hand; it pages on-call and runs the response."""

    dedup_key: str | None = Field(
        None,
        max_length=200,
        title="Dedup key 去重键",
        description="Leave empty for a new emergency; repeat a key to attach to its open emergency.",
    )
    opened_by: str = Field(
        OFFICE,
        min_length=1,
        max_length=100,
        title="Opened by 开启人",
        description="Who opens it: a member code of config/org.yaml (e.g. E1), or "
        "executive-office; recorded in the decision trail.",
    )


@flow(name="open-emergency", log_prints=True)
def open_emergency(form: OpenEmergencyForm = form_of(OpenEmergencyForm)) -> dict:
    """Operators open an emergency from the Prefect UI; it goes the same way as a webhook's."""
    intake = EmergencyIntake.model_validate(form.model_dump(exclude={"dedup_key", "opened_by"}))
    if form.opened_by != OFFICE:
        # The trail names who opened it: a person the office knows (an operator trial's
        # "nobody-here" was recorded as the actor three times), or the office itself.
        with unit_of_work() as session:
            try:
                active_member(session, form.opened_by, field="opened_by")
            except NotFound as exc:  # the office itself is allowed too (a re-trial)
                raise NotFound(
                    exc.message, field="opened_by", allowed=f"{OFFICE}, or {exc.allowed}"
                ) from None
    result = t.open_emergency(
        intake,
        source="operator",
        dedup_key=form.dedup_key or f"operator:{uuid.uuid4()}",
        actor=form.opened_by,
    )
    outcome = None
    if result.created:
        outcome = t.dispatch_emergency(result.emergency_id, default_dispatcher(), form.opened_by)
    elif result.send_now:  # the level was raised: the new leading group's page goes now
        t.send_now(list(result.send_now))
    dispatched = bool(outcome and outcome.dispatched)
    if result.created:
        what, shown = "opened", "opened 已开启"
    elif result.raised_from is not None:
        was, now = result.raised_from.value, result.level.value
        what = f"raised from level {was}"
        shown = f"repeat raising the level from {was} 由{was}级升为{now}级, new leading group paged"
    else:
        what, shown = "repeated", "repeat of an open emergency 重复上报"
    # The id is what acknowledge-emergency and resolve-emergency ask for: show it where the
    # operator looks, the run's log and its artifacts, not only in another run's parameters.
    get_run_logger().info(
        "emergency %s %s (level %s)%s",
        result.emergency_id,
        what,
        result.level.value,
        ", response started" if dispatched else "",
    )
    create_markdown_artifact(
        f"## 应急事项 Emergency {result.emergency_id}\n\n"
        f"- {shown}; "
        f"level {result.level.value}, status `{result.status}`\n"
        f"- response run started 已启动处置: {'yes' if dispatched else 'no'}\n"
        f"- acknowledge / resolve with this id 确认/办结时填写此编号: `{result.emergency_id}`",
        key=f"emergency-{result.emergency_id}",
        description="The emergency this run opened",
    )
    return {
        "emergency_id": result.emergency_id,
        "created": result.created,
        "raised_from": result.raised_from.value if result.raised_from else None,
        "dispatched": dispatched,
    }


class AnswerForm(BaseModel):
    """确认或解除应急事件 — acknowledge or resolve an emergency (a member of a group it pages,
    cleared for it)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    emergency_id: EmergencyId
    actor: str = Field(
        ...,
        min_length=1,
        max_length=100,
        title="Who 处置人",
        description="Your member code (config/org.yaml), e.g. E1: the trail names you.",
    )
    note: Text = Field("", max_length=2_000, title="Note 备注")


@flow(name="acknowledge-emergency")
def acknowledge_emergency(form: AnswerForm = form_of(AnswerForm)) -> str:
    """确认 — acknowledge a page: stops the escalation."""
    return t.acknowledge(form.emergency_id, form.actor, form.note, member=True).status.value


@flow(name="resolve-emergency")
def resolve_emergency(form: AnswerForm = form_of(AnswerForm)) -> str:
    """解除 — the emergency is over; the sweep then opens its follow-up issue (within a minute)."""
    return t.resolve(form.emergency_id, form.actor, form.note, member=True).status.value


class DeadlineForm(BaseModel):
    """记录时限节点 — e.g. the cross-department command was formed (level I, 24 h)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    emergency_id: EmergencyId
    deadline: str = Field(
        ...,
        min_length=1,
        max_length=64,
        title="Deadline 时限",
        description="A deadline of the emergency's level (config emergency.levels; hours "
        "there): report_to_leadership 报告领导小组 and command_formed 成立跨部门应急指挥部 "
        "(level I), solution 形成解决方案 (level II).",
    )
    actor: str = Field(..., min_length=1, max_length=100, title="Who 记录人")
    note: Text = Field("", max_length=2_000, title="Note 备注")


@flow(name="record-emergency-deadline")
def record_emergency_deadline(form: DeadlineForm = form_of(DeadlineForm)) -> bool:
    """Record a level deadline as met; missed ones are escalated by the sweep."""
    return t.record_deadline(form.emergency_id, form.deadline, form.actor, form.note)


@flow(name="dispatch-pending-emergencies", log_prints=True)
def dispatch_pending_emergencies() -> dict:
    """The sweep: dispatch what the gateway could not; escalate pages, missed level deadlines
    and overdue warnings; close resolved emergencies with their follow-up issue."""
    # Escalations first: they need only the database, and must not wait for a slow Prefect.
    # Each step runs whatever another raised (the run fails at the end, naming them): one
    # broken step must not stop the others, dispatch least of all.
    failed: list[str] = []

    def step(name: str, run, empty):
        try:
            return run()
        except Exception:
            get_run_logger().exception("sweep step %s failed", name)
            failed.append(name)
            return empty

    escalations = step("escalate", t.escalate, [])
    if escalations:
        # Their pages go now, not with the next delivery run, whose claim a storm's backlog
        # fills (a storm trial: escalation pages waited 3-4 minutes). Claimed priority
        # first: these pages before the backlog.
        rows = rows_to_send(escalations)
        step("send-escalation-pages", lambda: deliver_pending_notifications(limit=rows), {})
    missed = step("escalate-missed-deadlines", t.escalate_missed_deadlines, [])
    warnings = step("escalate-warnings", t.escalate_warnings, [])
    closed = step("close-resolved", t.close_resolved, [])
    outcomes = step("dispatch", lambda: t.dispatch_all_pending(default_dispatcher()), [])
    result = {
        "closed_with_follow_up": closed,
        "deadlines_missed": [f"{public_id}:{name}" for public_id, name in missed],
        "dispatched": [o.public_id for o in outcomes if o.dispatched],
        "still_pending": [o.public_id for o in outcomes if not o.dispatched],
        "escalations": [f"{e.public_id}:{e.action}:{e.step}" for e in escalations],
        "warnings_escalated": warnings,
    }
    # What the run did, in its log (an operator trial: a run that closed an emergency and
    # opened its issue logged only "Finished in state Completed()"). Ids only: titles may be
    # classified. A minute with nothing to do says nothing.
    for line in _sweep_lines(result):
        get_run_logger().info(line)
    if failed:
        raise RuntimeError(f"sweep steps failed: {', '.join(failed)} (the others ran)")
    return result


_SWEEP_WORDS = {
    "closed_with_follow_up": "closed (resolved; a follow-up issue each, none for a drill)",
    "deadlines_missed": "level deadlines missed, escalated",
    "dispatched": "response runs started",
    "still_pending": "not dispatched yet (the next sweep tries again)",
    "warnings_escalated": "warnings escalated",
}


def _sweep_lines(result: dict) -> list[str]:
    return [
        f"{len(result[key])} {words}: {', '.join(map(str, result[key]))}"
        for key, words in _SWEEP_WORDS.items()
        if result[key]
    ]
