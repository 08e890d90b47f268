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

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
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
    return dispatch_many(engine, ctx, [public_id], dispatcher, actor=actor)[0]


def dispatch_many(
    engine: Engine | None,
    ctx: Context,
    public_ids: list[str],
    dispatcher: Dispatcher,
    *,
    actor: str,
    write_lock: AbstractContextManager | None = None,
) -> list[DispatchOutcome]:
    """`dispatch` for several emergencies: the started runs are recorded in one transaction
    (a transaction per emergency queued on the database's write lock behind the intake's).
    Outcomes are in the order of `public_ids`. Never raises."""
    outcomes: dict[str, DispatchOutcome] = {}
    started: list[tuple[str, str]] = []
    for public_id in public_ids:
        try:
            started.append((public_id, str(dispatcher(public_id))))
        except Exception as exc:  # any failure of the engine must end in a direct page
            error = f"{type(exc).__name__}: {exc}"
            log.warning("dispatch of emergency %s failed: %s", public_id, error)
            with unit_of_work(engine) as session:
                paged = service.record_dispatch_failure(session, ctx, public_id, error, actor=actor)
            if paged:
                _deliver_now(engine, ctx)
            outcomes[public_id] = DispatchOutcome(public_id, False, error=error, paged=tuple(paged))
    if started:
        with write_lock or contextlib.nullcontext(), unit_of_work(engine) as session:
            service.mark_dispatched_many(session, ctx, started, actor=actor)
        for public_id, flow_run_id in started:
            outcomes[public_id] = DispatchOutcome(public_id, True, flow_run_id=flow_run_id)
    return [outcomes[public_id] for public_id in public_ids]


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
        *,
        max_batch: int = 256,
        write_lock: AbstractContextManager | None = None,
    ) -> None:
        """`write_lock`: held around this thread's transactions, to queue them in-process
        behind the other writers of this process (SQLite's own busy wait sleeps for
        milliseconds at a time; a lock hands over at once)."""
        self.engine, self.ctx_factory, self.dispatcher = engine, ctx_factory, dispatcher
        self.max_batch, self.write_lock = max_batch, write_lock
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
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:  # everything queued meanwhile goes together
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in batch
            by_actor: dict[str, list[str]] = {}
            for item in batch:
                if item is not None:
                    by_actor.setdefault(item[1], []).append(item[0])
            for actor, public_ids in by_actor.items():
                try:
                    dispatch_many(
                        self.engine,
                        self.ctx_factory(),
                        public_ids,
                        self.dispatcher,
                        actor=actor,
                        write_lock=self.write_lock,
                    )
                except Exception:  # the rows stay pending_dispatch; the sweep retries them
                    log.exception("background dispatch of %d emergencies failed", len(public_ids))

    def close(self, timeout: float = 30) -> None:
        """Drain what was queued (shutdown), then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)
