"""Page first, then hand the emergency to the engine that moves it.

Notify first, orchestrate after (as incident-management systems do): the on-call
contacts are paged by whoever dispatches the emergency — the gateway's
`BackgroundDispatch` thread right after the intake commit (with
`create_app(background_dispatch=False)` the request waits for it), the operator's form
or the dispatch sweep —
and only then is its flow run started. The page never waits for a flow-run process to
start (Prefect spawns a new Python process per run: seconds). The flow run's own
paging step then finds the emergency paged and pages nobody (`paging.first_page`: once,
whoever comes first); escalation is the every-minute sweep's.

A dispatcher is any callable `dispatcher(public_id) -> flow_run_id` that
raises when it cannot start the run. The Prefect one lives in
flows/emergency.py (the core never imports Prefect); it passes the public id
as the flow run's idempotency key, so dispatching twice starts one run.

The emergency is committed before anything here runs, and each step is its own
transaction, so a process that dies between two steps loses nothing:
* before the page commits: the row is `pending_dispatch` with no page; the dispatch
  sweep (`dispatch_pending`) pages it and starts its run, and a run started otherwise
  pages it in its first step;
* after the page commits, before it is sent: its outbox rows are sent by the next
  delivery run;
* before the flow run is recorded: the sweep starts it (the idempotency key returns
  the run already created, if any) and pages nobody again.
An engine that is down leaves the emergency `pending_dispatch` (paged all the same);
its first failure goes on the trail and the sweep tries again later.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, InvalidStateError
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency import service
from taskforce.emergency.paging import FirstPage, first_pages
from taskforce.emergency.queries import get_emergency
from taskforce.trail.models import TrailEntry

Dispatcher = Callable[[str], str]
log = logging.getLogger(__name__)
FIRST_PAGE_REASON = "opened"  # the trail's reason for the page sent before the flow run starts
FAILURES_BEFORE_PAUSE = 2  # failed dispatches in a row after which a round stops trying
# The dispatch thread starts runs for this long between looks at its queue, where new
# emergencies wait for their first page (a run start: tens of ms, seconds on a loaded Prefect).
RUN_START_SLICE_SECONDS = 0.5
_OUT_OF_TIME = "not tried: this round's time for run starts is spent"


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
    paged: tuple[str, ...] = ()  # the members this call paged (empty: paged before)

    @property
    def out_of_time(self) -> bool:
        """Not tried because the round's time for run starts was spent (not a failure)."""
        return self.error == _OUT_OF_TIME


def dispatch(
    engine: Engine | None,
    ctx: Context,
    public_id: str,
    dispatcher: Dispatcher,
    *,
    actor: str,
    channels=None,
) -> DispatchOutcome:
    """Page the emergency's on-call (unless paged already), then start its flow run.
    Never raises."""
    return dispatch_many(engine, ctx, [public_id], dispatcher, actor=actor, channels=channels)[0]


def dispatch_many(
    engine: Engine | None,
    ctx: Context,
    public_ids: list[str],
    dispatcher: Dispatcher,
    *,
    actor: str,
    write_lock: AbstractContextManager | None = None,
    channels=None,
    budget_seconds: float | None = None,
) -> list[DispatchOutcome]:
    """`dispatch` for several emergencies: their first pages in one transaction and sent at
    once, then each flow run started, then the started runs and first failures recorded in
    one transaction (each transaction queued on `write_lock` behind the intake's).

    `channels`: the Apprise channels to send through (default: config/apprise.yml, read
    per call). `budget_seconds`: stop starting runs once it is spent (the rest are paged,
    and wait for the next round). Outcomes are in the order of `public_ids`. Never raises."""
    lock = write_lock or contextlib.nullcontext()
    paged = page_many(engine, ctx, public_ids, actor=actor, write_lock=lock, channels=channels)
    starts = RunStarts(engine, dispatcher, write_lock=lock)
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    outcomes = starts.start(ctx, [(public_id, actor) for public_id in public_ids], deadline)
    return [_with_pages(outcomes[public_id], paged.get(public_id)) for public_id in public_ids]


def page_many(
    engine: Engine | None,
    ctx: Context,
    public_ids: list[str],
    *,
    actor: str,
    write_lock: AbstractContextManager,
    channels=None,
) -> dict[str, FirstPage]:
    """The first pages of those not paged yet, written in one transaction and sent at once."""
    paged = _page_first(engine, ctx, public_ids, actor=actor, write_lock=write_lock)
    if paged:
        deliver_now(engine, ctx, [p.trail_entry_id for p in paged.values()], channels, write_lock)
    return paged


class RunStarts:
    """Starts flow runs and records them, pausing when the engine fails again and again.

    It remembers the failures in a row across calls: the dispatch thread starts runs a
    few at a time, between looks at its queue."""

    def __init__(
        self, engine: Engine | None, dispatcher: Dispatcher, *, write_lock: AbstractContextManager
    ) -> None:
        self.engine, self.dispatcher, self.lock = engine, dispatcher, write_lock
        self.in_a_row = 0

    def start(
        self, ctx: Context, wanted: list[tuple[str, str]], deadline: float | None = None
    ) -> dict[str, DispatchOutcome]:
        """Start the runs of these (public id, actor), in order, and record them in one
        transaction. Those left when the deadline (time.monotonic) has passed, or after
        the engine failed for FAILURES_BEFORE_PAUSE in a row, are not tried: they are
        paged already, and the next round (the sweep) tries them."""
        started: list[tuple[str, str, str]] = []  # (public id, actor, flow run id)
        failed: dict[str, tuple[str, str]] = {}  # public id -> (actor, error)
        untried: dict[str, str] = {}
        for public_id, actor in wanted:
            if self.in_a_row >= FAILURES_BEFORE_PAUSE:
                # The engine failed for the last ones in a row: the rest wait for the next
                # sweep. A slow API answers each call only at its timeout, with retries:
                # trying a burst's thousand emergencies one after another held the sweep for
                # hours. Two in a row, so that one emergency failing for a reason of its
                # own, first in every round, does not hold back the others.
                untried[public_id] = (
                    f"not tried: the engine failed {self.in_a_row} times in a row"
                    + (f" ({', '.join(failed)})" if failed else "")
                )
                continue
            if deadline is not None and (started or failed) and time.monotonic() > deadline:
                untried[public_id] = _OUT_OF_TIME
                continue
            try:
                started.append((public_id, actor, str(self.dispatcher(public_id))))
                self.in_a_row = 0
            except Exception as exc:  # the engine is away: the sweep tries again
                failed[public_id] = (actor, f"{type(exc).__name__}: {exc}")
                self.in_a_row += 1
                log.warning("dispatch of emergency %s failed: %s", public_id, failed[public_id][1])
        if paused := sum(e != _OUT_OF_TIME for e in untried.values()):
            log.warning("%d emergencies left for the next sweep: the engine fails", paused)
        if started or failed:
            try:
                with self.lock, unit_of_work(self.engine) as session:
                    for public_id, (actor, error) in failed.items():
                        _record_first_failure(session, ctx, public_id, error, actor=actor)
                    by_actor: dict[str, list[tuple[str, str]]] = {}
                    for public_id, actor, run_id in started:
                        by_actor.setdefault(actor, []).append((public_id, run_id))
                    for actor, runs in by_actor.items():
                        service.mark_dispatched_many(session, ctx, runs, actor=actor)
            except Exception:  # still pending_dispatch: the sweep records the run it finds
                log.exception("recording the dispatch of %d emergencies failed", len(wanted))
                failed.update({p: (a, "not recorded") for p, a, _ in started})
                started = []
        errors = {public_id: e for public_id, (_actor, e) in failed.items()} | untried
        return {
            public_id: DispatchOutcome(public_id, True, flow_run_id=run_id)
            for public_id, _actor, run_id in started
        } | {
            public_id: DispatchOutcome(public_id, False, error=e) for public_id, e in errors.items()
        }


def _with_pages(outcome: DispatchOutcome, paged: FirstPage | None) -> DispatchOutcome:
    if paged is None:
        return outcome
    return DispatchOutcome(
        outcome.public_id,
        outcome.dispatched,
        outcome.flow_run_id,
        outcome.error,
        tuple(paged.members),
    )


def _page_first(
    engine: Engine | None,
    ctx: Context,
    public_ids: Iterable[str],
    *,
    actor: str,
    write_lock: AbstractContextManager,
) -> dict[str, FirstPage]:
    """The first pages of those not paged yet, in one transaction; if that fails, one
    transaction each, so one bad emergency does not hold back the others' pages.
    An emergency whose page cannot be written is paged by its flow run or the sweep."""
    wanted = list(dict.fromkeys(public_ids))

    def page_all(ids: list[str]) -> dict[str, FirstPage]:
        with write_lock, unit_of_work(engine) as session:
            return first_pages(session, ctx, ids, actor=actor, reason=FIRST_PAGE_REASON)

    try:
        return page_all(wanted)
    except Exception:
        if len(wanted) == 1:
            log.exception("first page of emergency %s failed", wanted[0])
            return {}
    paged: dict[str, FirstPage] = {}
    for public_id in wanted:
        try:
            paged.update(page_all([public_id]))
        except Exception:
            log.exception("first page of emergency %s failed", public_id)
    return paged


def _record_first_failure(
    session: Session, ctx: Context, public_id: str, error: str, *, actor: str
) -> None:
    """The emergency's first failed dispatch goes on the trail; the sweep's retries during
    an outage are only logged, so the trail does not fill with one entry per emergency
    per minute."""
    emergency = get_emergency(session, public_id, lock=True)
    if emergency.flow_run_id is not None:
        return
    recorded = session.scalar(
        select(TrailEntry.id)
        .where(
            TrailEntry.action == "emergency.dispatch_failed",
            TrailEntry.subject_type == "emergency",
            TrailEntry.subject_id == emergency.public_id,
        )
        .limit(1)
    )
    if recorded is not None:
        return
    events.record(
        session,
        ctx.policy,
        at=ctx.now(),
        actor=actor,
        action="emergency.dispatch_failed",
        subject_type="emergency",
        subject_id=emergency.public_id,
        classification=emergency.classification,
        is_drill=emergency.is_drill,
        payload={"error": error[:500], "paged": emergency.pages_at_step > 0},
    )


def deliver_now(
    engine: Engine | None,
    ctx: Context,
    trail_entry_ids: list[int],
    channels=None,
    write_lock: AbstractContextManager | None = None,
) -> None:
    """Send the messages of these trail entries at once, from this thread: a page must not
    wait for the delivery run or for a flow-run process to start. Only these rows: a backlog
    in the outbox is the delivery run's, and sending it here would delay the page and the
    flow run. Never raises: what is not sent stays in the outbox for the delivery run."""
    from taskforce.notify.delivery import deliver_pending

    try:
        deliver_pending(
            engine,
            ctx,
            limit=max(200, 50 * len(trail_entry_ids)),
            trail_entry_ids=trail_entry_ids,
            channels=channels,
            write_lock=write_lock,
        )
    except Exception as exc:  # the outbox keeps them; the next delivery run retries
        log.warning("first pages stay in the outbox: %s", exc)


def dispatch_pending(
    engine: Engine | None, ctx: Context, dispatcher: Dispatcher, *, actor: str = "dispatch-sweep"
) -> list[DispatchOutcome]:
    """The sweep: every emergency without a flow run gets another try, oldest first, for
    at most `emergency.sweep_dispatch_seconds` of run starts. A storm's run starts on a
    loaded Prefect took 2.3 s each; a sweep starting hundreds ran for minutes, and the next
    sweeps, with the escalations they carry, waited for it (a storm trial)."""
    with unit_of_work(engine) as session:
        pending = service.pending_dispatch(session)
    if not pending:
        return []
    budget = ctx.policy.emergency.sweep_dispatch_seconds
    outcomes = dispatch_many(engine, ctx, pending, dispatcher, actor=actor, budget_seconds=budget)
    if late := sum(o.out_of_time for o in outcomes):
        log.info("%d emergencies paged, their runs left for the next sweep (time spent)", late)
    return outcomes


# What the dispatch thread's queue holds: (public id, actor, the caller's future).
_Queued = tuple[str, str, "Future[DispatchOutcome]"]


@dataclass(frozen=True)
class _SendNow:
    """Messages already written (a raised emergency's page) for the thread to send at once."""

    trail_entry_ids: tuple[int, ...]
    done: Future[None]


class BackgroundDispatch:
    """Page and dispatch off the request path: the gateway commits the emergency, answers
    202, and hands its id to this queue; one thread per process pages the on-call contacts
    (written in one transaction, sent at once through Apprise) and then starts the flow runs.

    Why: starting a flow run is a few round trips to the Prefect API (tens of ms, seconds
    when Prefect is slow or down), which would cap intake at Prefect's pace and let a slow
    Prefect stall the monitoring systems' webhooks; and the page must not wait for the flow
    run's process to start. The committed `pending_dispatch` row is the outbox: if this
    process dies before the queue drains, the dispatch sweep (`dispatch_pending`, every
    minute) pages and starts what is left, so nothing accepted is lost.

    The thread starts with the object and first loads the Apprise channels (importing
    Apprise takes about a second), so the first emergency after a start does not wait
    for that.

    A caller that must answer with the outcome (the gateway without background dispatch)
    waits on the future `submit` returns: a burst of new emergencies is still paged and
    dispatched in batches by this one thread, not by one request thread each (each of those
    loaded the Apprise channels again and waited in SQLite's busy handler for the others).
    """

    def __init__(
        self,
        engine: Engine | None,
        ctx_factory: Callable[[], Context],
        dispatcher: Dispatcher,
        *,
        max_batch: int = 256,
        write_lock: AbstractContextManager | None = None,
        channels=None,
    ) -> None:
        """`write_lock`: held around this thread's transactions, to queue them in-process
        behind the other writers of this process (SQLite's own busy wait sleeps for
        milliseconds at a time; a lock hands over at once). `channels`: the Apprise
        channels (default: config/apprise.yml, loaded once by the thread)."""
        self.engine, self.ctx_factory, self.dispatcher = engine, ctx_factory, dispatcher
        self.max_batch, self.write_lock = max_batch, write_lock
        self.channels = channels
        self._queue: queue.SimpleQueue[_Queued | _SendNow | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (it loads the channels, and with them Apprise, about a second of
        imports, before the first emergency needs them). `submit` starts it too. Not done by
        the constructor: an app built only for its schema (`taskforce gateway openapi`)
        never serves and needs no thread."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="emergency-dispatch", daemon=True
                )
                self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def submit(self, public_id: str, *, actor: str) -> Future[DispatchOutcome]:
        """Queue the emergency; the future holds its outcome once its batch is done (it
        never holds an exception: a failed batch is a failed outcome, left to the sweep)."""
        self.start()
        done: Future[DispatchOutcome] = Future()
        self._queue.put((public_id, actor, done))
        return done

    def send_now(self, trail_entry_ids: list[int]) -> Future[None]:
        """Send these trail entries' messages from the thread, ahead of the dispatches queued
        with them (a raised emergency's page: written by the intake, not by a dispatch). The
        future is done once they are sent or left in the outbox for the delivery run."""
        self.start()
        done: Future[None] = Future()
        self._queue.put(_SendNow(tuple(trail_entry_ids), done))
        return done

    def _load_channels(self):
        """The channels, loaded once; None (each delivery loads and reports the problem)
        while config/apprise.yml cannot be loaded."""
        if self.channels is None:
            from taskforce.notify.channels import load_channels

            try:
                policy = self.ctx_factory().policy.notifications
                self.channels = load_channels(overflow=policy.overflow)
            except Exception as exc:  # deliveries load it again and keep the rows if it fails
                log.warning("notification channels not loaded: %s", exc)
        return self.channels

    def _run(self) -> None:
        self._load_channels()
        # Paged, their runs not started yet: started a slice at a time, with a look at the
        # queue between slices, so a new emergency's page never waits behind a burst's run
        # starts (a storm trial: 120 of 200 first pages went out 3 minutes late, behind 80
        # run starts at 2.3 s each on a loaded Prefect).
        backlog: list[tuple[_Queued, FirstPage | None]] = []
        starts = RunStarts(self.engine, self.dispatcher, write_lock=self._write_lock())
        stop = False
        while True:
            batch = self._take(wait=not backlog and not stop)
            stop = stop or None in batch
            self._send_now([item for item in batch if isinstance(item, _SendNow)])
            by_actor: dict[str, list[_Queued]] = {}
            for item in batch:
                if isinstance(item, tuple):
                    by_actor.setdefault(item[1], []).append(item)
            for actor, items in by_actor.items():
                backlog += self._page(actor, items)
            if backlog:
                backlog = self._start_slice(starts, backlog)
                if not backlog:
                    starts.in_a_row = 0  # a new burst tries the engine afresh
            elif stop:
                return

    def _take(self, *, wait: bool) -> list:
        """What is queued, up to max_batch; with `wait`, at least one item (blocking)."""
        batch = [self._queue.get()] if wait else []
        while len(batch) < self.max_batch:  # everything queued meanwhile goes together
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write_lock(self) -> AbstractContextManager:
        return self.write_lock or contextlib.nullcontext()

    def _page(self, actor: str, items: list[_Queued]) -> list[tuple[_Queued, FirstPage | None]]:
        try:
            paged = page_many(
                self.engine,
                self.ctx_factory(),
                [public_id for public_id, _, _ in items],
                actor=actor,
                write_lock=self._write_lock(),
                channels=self._load_channels(),
            )
        except Exception:  # not paged here: the run's first step or the sweep pages them
            log.exception("first pages of %d emergencies failed", len(items))
            paged = {}
        return [(item, paged.get(item[0])) for item in items]

    def _start_slice(
        self, starts: RunStarts, backlog: list[tuple[_Queued, FirstPage | None]]
    ) -> list[tuple[_Queued, FirstPage | None]]:
        """Start runs from the backlog for RUN_START_SLICE_SECONDS (at least one), answer
        their callers, and return what is left."""
        deadline = time.monotonic() + RUN_START_SLICE_SECONDS
        wanted = [(item[0], item[1]) for item, _page in backlog]
        try:
            outcomes = starts.start(self.ctx_factory(), wanted, deadline)
        except Exception as exc:  # the rows stay pending_dispatch; the sweep retries them
            log.exception("background dispatch of %d emergencies failed", len(wanted))
            error = f"{type(exc).__name__}: {exc}"
            outcomes = {
                public_id: DispatchOutcome(public_id, False, error=error) for public_id, _ in wanted
            }
        left = []
        for item, page in backlog:
            outcome = outcomes[item[0]]
            if outcome.out_of_time:
                left.append((item, page))  # its turn comes after the next look at the queue
                continue
            # A caller that stopped waiting (its request cancelled at shutdown) cancelled its
            # future; the emergency was dispatched all the same, and this thread lives on.
            with contextlib.suppress(InvalidStateError):
                item[2].set_result(_with_pages(outcome, page))
        return left

    def _send_now(self, items: list[_SendNow]) -> None:
        if not items:
            return
        try:
            deliver_now(
                self.engine,
                self.ctx_factory(),
                [i for item in items for i in item.trail_entry_ids],
                self._load_channels(),
                self.write_lock,
            )
        except Exception:  # the rows stay in the outbox: the delivery run sends them
            log.exception("sending %d urgent messages at once failed", len(items))
        for item in items:
            with contextlib.suppress(InvalidStateError):
                item.done.set_result(None)

    def close(self, timeout: float = 30) -> None:
        """Drain what was queued (shutdown), then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)
