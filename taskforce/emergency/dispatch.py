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
import queue
import threading
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


class BackgroundDispatch:
    """Dispatch off the request path: the gateway commits the emergency, answers 202, and
    hands its id to this queue; one thread per process starts the flow runs.

    Why: starting a flow run is a few round trips to the Prefect API (tens of ms, seconds
    when Prefect is slow or down), which would cap intake at Prefect's pace and let a slow
    Prefect stall the monitoring systems' webhooks. The committed `pending_dispatch` row is
    the outbox: if this process dies before the queue drains, the dispatch sweep
    (`dispatch_pending`, every minute) starts what is left, so nothing accepted is lost.
    """

    def __init__(
        self,
        engine: Engine | None,
        ctx_factory: Callable[[], Context],
        dispatcher: Dispatcher,
    ) -> None:
        self.engine, self.ctx_factory, self.dispatcher = engine, ctx_factory, dispatcher
        self._queue: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, public_id: str, *, actor: str) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="emergency-dispatch", daemon=True
                )
                self._thread.start()
        self._queue.put((public_id, actor))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            public_id, actor = item
            try:
                dispatch(self.engine, self.ctx_factory(), public_id, self.dispatcher, actor=actor)
            except Exception:  # the row stays pending_dispatch; the sweep retries it
                log.exception("background dispatch of emergency %s failed", public_id)

    def close(self, timeout: float = 30) -> None:
        """Drain what was queued (shutdown), then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)
