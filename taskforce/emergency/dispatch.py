"""Hand an emergency to the engine that moves it, or page directly when it is away.

A dispatcher is any callable `dispatcher(public_id) -> flow_run_id` that
raises when it cannot start the run. The Prefect one lives in
flows/emergency.py (the core never imports Prefect); it passes the public id
as the flow run's idempotency key, so dispatching twice starts one run.

The emergency is committed before the dispatcher is called: an engine that
is down loses nothing. It stays `pending_dispatch`, its on-call contacts are
paged directly (outbox rows, on the trail), and the sweep
(`dispatch_pending`) tries again later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency import service

Dispatcher = Callable[[str], str]
log = logging.getLogger(__name__)


class DispatchUnavailable(RuntimeError):
    """No engine is configured to start flow runs."""


def no_dispatcher(public_id: str) -> str:
    raise DispatchUnavailable("no dispatcher configured")


@dataclass(frozen=True)
class DispatchOutcome:
    public_id: str
    dispatched: bool
    flow_run_id: str | None = None
    error: str | None = None
    paged: tuple[str, ...] = ()


def dispatch(
    engine: Engine | None, ctx: Context, public_id: str, dispatcher: Dispatcher, *, actor: str
) -> DispatchOutcome:
    """Start the emergency's flow run; on failure, page its on-call directly. Never raises."""
    try:
        flow_run_id = str(dispatcher(public_id))
    except Exception as exc:  # any failure of the engine must end in a direct page
        error = f"{type(exc).__name__}: {exc}"
        log.warning("dispatch of emergency %s failed: %s", public_id, error)
        with unit_of_work(engine) as session:
            paged = service.record_dispatch_failure(session, ctx, public_id, error, actor=actor)
        if paged:
            _deliver_now(engine, ctx)
        return DispatchOutcome(public_id, False, error=error, paged=tuple(paged))
    with unit_of_work(engine) as session:
        service.mark_dispatched(session, ctx, public_id, flow_run_id, actor=actor)
    return DispatchOutcome(public_id, True, flow_run_id=flow_run_id)


def _deliver_now(engine: Engine | None, ctx: Context) -> None:
    """Send the direct pages at once: with Prefect down, no delivery run will come for them."""
    from taskforce.notify.delivery import deliver_pending

    try:
        deliver_pending(engine, ctx, limit=200)
    except Exception as exc:  # the outbox keeps them; the next delivery run retries
        log.warning("direct pages stay in the outbox: %s", exc)


def dispatch_pending(
    engine: Engine | None, ctx: Context, dispatcher: Dispatcher, *, actor: str = "dispatch-sweep"
) -> list[DispatchOutcome]:
    """The sweep: every emergency without a flow run gets another try."""
    with unit_of_work(engine) as session:
        pending = service.pending_dispatch(session)
    return [dispatch(engine, ctx, public_id, dispatcher, actor=actor) for public_id in pending]
