"""Prefect tasks around emergencies: each opens one transaction and calls the core.

No Prefect retries on state changes: every core step is idempotent, so a
rerun of the flow finishes the job instead.
"""

from __future__ import annotations

import datetime as dt

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from taskforce.clock import local_minute
from taskforce.context import Context
from taskforce.db import get_engine, unit_of_work
from taskforce.emergency import service
from taskforce.emergency.dispatch import (
    Dispatcher,
    DispatchOutcome,
    deliver_now,
    dispatch,
    dispatch_pending,
)
from taskforce.emergency.drill import DrillReport, drill_report
from taskforce.emergency.forms import EmergencyIntake, OpenResult, ReserveDrawForm
from taskforce.emergency.models import Emergency, EmergencyStatus
from taskforce.emergency.paging import FirstPage, first_page
from taskforce.emergency.queries import get_emergency
from taskforce.emergency.responders import require_recorder, require_responder
from taskforce.emergency.service import EmergencyState, Escalation
from taskforce.emergency.warnings import escalate_overdue_warnings


def context() -> Context:
    return Context.default()


@task(name="read-emergency", cache_policy=NO_CACHE)
def read_emergency(public_id: str) -> EmergencyState:
    with unit_of_work() as session:
        return service.state(session, public_id)


@task(name="open-emergency", cache_policy=NO_CACHE)
def open_emergency(
    intake: EmergencyIntake, *, source: str, dedup_key: str, actor: str, is_drill: bool = False
) -> OpenResult:
    with unit_of_work() as session:
        return service.open_emergency(
            session,
            context(),
            intake,
            source=source,
            dedup_key=dedup_key,
            actor=actor,
            is_drill=is_drill,
        )


@task(name="dispatch-emergency", cache_policy=NO_CACHE)
def dispatch_emergency(public_id: str, dispatcher: Dispatcher, actor: str) -> DispatchOutcome:
    return dispatch(get_engine(), context(), public_id, dispatcher, actor=actor)


@task(name="send-now", cache_policy=NO_CACHE)
def send_now(trail_entry_ids: list[int]) -> None:
    """Send these trail entries' messages at once (a raised emergency's page and notice)
    rather than with the next delivery run; what cannot be sent stays in the outbox."""
    deliver_now(get_engine(), context(), trail_entry_ids)


@task(name="page-on-call", cache_policy=NO_CACHE)
def page_on_call(public_id: str, actor: str) -> FirstPage | None:
    """The first page, unless the dispatcher (the gateway's thread, the sweep) sent it
    already, as it normally has: then None, and nobody is paged twice."""
    with unit_of_work() as session:
        first = first_page(session, context(), public_id, actor=actor, reason="emergency-response")
    if first is not None:
        get_run_logger().info("paged %s", ", ".join(first.members))
    else:
        get_run_logger().info("already paged before this run started")
    return first


@task(name="escalate-unacknowledged", cache_policy=NO_CACHE)
def escalate(public_id: str | None = None) -> list[Escalation]:
    with unit_of_work() as session:
        done = service.escalate_due(session, context(), only=public_id)
    for e in done:
        get_run_logger().warning("emergency %s: %s at %s", e.public_id, e.action, e.step)
    return done


@task(name="acknowledge-emergency", cache_policy=NO_CACHE)
def acknowledge(
    public_id: str, actor: str, note: str = "", *, member: bool = False
) -> EmergencyState:
    """`member`: the actor is an operator (a form's entry), who must be a member the
    emergency pages and cleared for it (taskforce/emergency/responders.py)."""
    with unit_of_work() as session:
        # Read under the row's lock: whether this run acknowledged, or someone before it.
        emergency = _typed(session, public_id)
        public_id, before = emergency.public_id, emergency.acknowledged_at
        if member:
            require_responder(session, context(), public_id, actor)
        # Resolving sets acknowledged_at too: a resolved emergency was not "acknowledged".
        done = "acknowledged" if emergency.resolved_at is None else "resolved"
        if emergency.status == EmergencyStatus.closed:
            done = "resolved and closed"  # the time shown below is the resolution's
        after = service.acknowledge(session, context(), public_id, actor=actor, note=note)
    _said(
        public_id,
        f"acknowledged by {actor}: escalation stopped, status {after.status.value}",
        before if done == "acknowledged" else emergency.resolved_at,
        done,
    )
    return after


@task(name="resolve-emergency", cache_policy=NO_CACHE)
def resolve(public_id: str, actor: str, note: str = "", *, member: bool = False) -> EmergencyState:
    """`member`: as for `acknowledge`."""
    with unit_of_work() as session:
        emergency = _typed(session, public_id)
        public_id, before = emergency.public_id, emergency.resolved_at
        if member:
            require_responder(session, context(), public_id, actor)
        after = service.resolve(session, context(), public_id, actor=actor, note=note)
    # Closed next by the sweep (service.close_resolved) or the drill flow; a drill's report
    # is its follow-up, not an issue.
    then = (
        "a drill, closed without a follow-up issue"
        if after.is_drill
        else "the sweep closes it and opens its follow-up issue"
    )
    _said(public_id, f"resolved by {actor}: {then}", before, "resolved")
    return after


def _typed(session, public_id: str) -> Emergency:
    """The emergency an operator's form names, under its row's lock: a short id made whole;
    first characters several ids share are refused listing them at the office's time."""
    return get_emergency(session, public_id, lock=True, timezone=context().policy.timezone)


def _said(public_id: str, done: str, earlier: dt.datetime | None, what: str) -> None:
    """One line in the run's log for what an operator's form did (an operator trial: a
    successful acknowledgement's log said nothing of who, or whether it was already done).
    Ids and member codes only: an emergency's title may be classified."""
    if earlier is None:
        get_run_logger().info("%s %s", public_id, done)
    else:
        get_run_logger().info(
            "%s was already %s (%s); nothing changed", public_id, what, _local(earlier)
        )


def _local(instant: dt.datetime) -> str:
    """An instant as the office reads it, with its zone: the run's own log lines are
    stamped in UTC beside it (an operator trial read 08:34 against 00:35)."""
    timezone = context().policy.timezone
    return f"{local_minute(instant, timezone)} {timezone}"


@task(name="draw-emergency-reserve", cache_policy=NO_CACHE)
def draw_reserve(public_id: str, form: ReserveDrawForm, actor: str) -> dict:
    with unit_of_work() as session:
        return service.request_reserve_draw(
            session,
            context(),
            public_id,
            form,
            actor=actor,
            key=f"emergency:{public_id}:reserve-draw",
        )


@task(name="close-with-follow-up", cache_policy=NO_CACHE)
def close_with_follow_up(public_id: str, actor: str) -> EmergencyState:
    with unit_of_work() as session:
        return service.close_with_follow_up(session, context(), public_id, actor=actor)


@task(name="dispatch-pending-emergencies", cache_policy=NO_CACHE)
def dispatch_all_pending(dispatcher: Dispatcher) -> list[DispatchOutcome]:
    return dispatch_pending(get_engine(), context(), dispatcher)


@task(name="close-resolved-emergencies", cache_policy=NO_CACHE)
def close_resolved() -> list[str]:
    with unit_of_work() as session:
        return service.close_resolved(session, context())


@task(name="escalate-missed-deadlines", cache_policy=NO_CACHE)
def escalate_missed_deadlines() -> list[tuple[str, str]]:
    with unit_of_work() as session:
        return service.escalate_missed_deadlines(session, context())


@task(name="record-emergency-deadline", cache_policy=NO_CACHE)
def record_deadline(public_id: str, name: str, actor: str, note: str = "") -> bool:
    with unit_of_work() as session:
        # A deadline recorded as met stops its missed-deadline escalation: a responder or the
        # executive office, cleared for the emergency.
        public_id = _typed(session, public_id).public_id
        require_recorder(session, context(), public_id, actor)
        recorded = service.record_deadline_met(
            session, context(), public_id, name, actor=actor, note=note
        )
    if recorded:
        get_run_logger().info("%s: deadline %s recorded as met by %s", public_id, name, actor)
    else:  # met before: recorded by someone, or (report_to_leadership) by the page itself
        get_run_logger().info(
            "%s: deadline %s was already met; %s's record changed nothing", public_id, name, actor
        )
    return recorded


@task(name="escalate-overdue-warnings", cache_policy=NO_CACHE)
def escalate_warnings() -> list[int]:
    with unit_of_work() as session:
        return escalate_overdue_warnings(session, context())


@task(name="drill-report", cache_policy=NO_CACHE)
def make_drill_report(public_id: str, path: str) -> DrillReport:
    with unit_of_work() as session:
        return drill_report(session, context(), public_id, path=path)
