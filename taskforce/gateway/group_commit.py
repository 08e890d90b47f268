"""Group commit: the gateway's intake writes many webhooks in one transaction.

Each webhook is committed before its 202, as the issue requires, but not in a
transaction of its own. Requests hand their validated intake to one writer thread
per process; it takes every request waiting (up to `max_batch`), writes them with
`service.open_emergencies` in one transaction, and answers each request after the
commit. A lone request is written at once (no waiting for company); under load, the
requests that arrived during one commit share the next.

Why: on SQLite every write transaction takes the database's one write lock, and the
trail is a hash chain with one head row, so concurrent per-request transactions queue
on the lock (sleeping in SQLite's busy handler) and a transaction of a few small
INSERTs costs far more than the rows. One writer and one transaction per batch turns
that into set-based work (benchmarks/figures/gateway.py measures it).

On SQLite the gateway's connections do not checkpoint the write-ahead log themselves: the
commit that crosses SQLite's 1,000-page mark copies the log into the database file and
syncs it, a stall of 20-600 ms on a large database under load (benchmarks/figures/gateway.py,
p99), taken while the write lock is held and the batch waits for its answers. A thread of
the gateway checkpoints instead (`WalCheckpointer`, PASSIVE: it never blocks a writer).

If a batch fails as a whole (e.g. a unique-index race with another gateway process on
PostgreSQL), its requests are written again one by one with `open_emergency`, each in
its own transaction, so one bad request never fails the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import Engine, event

from taskforce.context import Context
from taskforce.db import get_engine, unit_of_work
from taskforce.emergency import service
from taskforce.emergency.forms import OpenResult

log = logging.getLogger(__name__)
# The writer thread ends after this long without work; the next request restarts it.
IDLE_SECONDS = 5
# How often the checkpointer copies the write-ahead log into the database (SQLite). A
# second of intake at full speed is a few MB of log, about SQLite's own 1,000-page mark.
CHECKPOINT_SECONDS = 1.0


class WalCheckpointer:
    """Checkpoint an SQLite database's write-ahead log off the request path.

    Installs a pool listener on `engine` that turns SQLite's automatic checkpoint off for
    every connection the engine hands out (the group commit's and the background
    dispatch's alike), and runs `PRAGMA wal_checkpoint(PASSIVE)` every CHECKPOINT_SECONDS
    in a daemon thread, on a connection of its own, while the process writes. Other
    processes keep their automatic checkpoints; closing the last connection checkpoints
    too. Does nothing for other databases.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.enabled = engine.dialect.name == "sqlite" and engine.url.database not in (
            None,
            "",
            ":memory:",
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._last_write = 0.0
        if self.enabled and not event.contains(engine, "checkout", _no_autocheckpoint):
            event.listen(engine, "checkout", _no_autocheckpoint)

    def wrote(self) -> None:
        """A transaction of this process committed: checkpoint within CHECKPOINT_SECONDS."""
        if not self.enabled:
            return
        self._last_write = time.monotonic()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="gateway-wal-checkpoint", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        checkpointed = 0.0
        while True:
            time.sleep(CHECKPOINT_SECONDS)  # a background thread of the server, not a test
            if self._last_write <= checkpointed:
                if time.monotonic() - self._last_write > IDLE_SECONDS:
                    with self._lock:
                        if self._last_write <= checkpointed:
                            self._thread = None
                            return
                continue
            checkpointed = time.monotonic()
            try:
                self.checkpoint()
            except Exception as exc:  # the next checkpoint (or SQLite at close) catches up
                log.warning("WAL checkpoint failed: %s", exc)

    def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (busy, log pages, pages checkpointed)."""
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            busy, pages, done = cursor.fetchone()
            cursor.close()
            return busy, pages, done
        finally:
            raw.close()


_AUTOCHECKPOINT_OFF = "taskforce_autocheckpoint_off"


def _no_autocheckpoint(dbapi_connection, record, _proxy) -> None:
    # On checkout (connections made before the listener was installed get it too), once
    # per connection: the PRAGMA on every checkout was a statement per intake batch.
    if record.info.get(_AUTOCHECKPOINT_OFF):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()
    record.info[_AUTOCHECKPOINT_OFF] = True


class IntakeFirstLock:
    """The process's write lock, with the intake first.

    `with lock:` is what the other writers of the process take (the dispatch thread's
    page, delivery and bookkeeping transactions): it waits while an intake batch waits.
    `with lock.intake():` is the group-commit writer's. A plain lock let the dispatch
    thread, which runs transaction after transaction, take it again the moment it let go,
    ahead of a batch of webhooks already waiting: the batch then waited for several of
    those transactions, which was the p99 of the gateway figure once delivery got faster
    (benchmarks/RESULTS.md). Now a batch waits for at most the one transaction in progress.
    The others are not starved: the writer lets go between batches, and waits only
    when they hold the lock."""

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._held = False
        self._intake_waiting = 0

    def __enter__(self) -> IntakeFirstLock:
        with self._changed:
            while self._held or self._intake_waiting:
                self._changed.wait()
            self._held = True
        return self

    def __exit__(self, *_exc) -> None:
        self._release()

    @contextlib.contextmanager
    def intake(self) -> Iterator[None]:
        with self._changed:
            self._intake_waiting += 1
            self._changed.notify_all()  # for `wait_for_intake_waiting`
            try:
                while self._held:
                    self._changed.wait()
            except BaseException:  # gave up waiting: the others may go again
                self._intake_waiting -= 1
                self._changed.notify_all()
                raise
            self._intake_waiting -= 1
            self._held = True
        try:
            yield
        finally:
            self._release()

    def wait_for_intake_waiting(self, timeout: float) -> bool:
        """Block until an intake batch waits for the lock (tests; never on a hot path)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._intake_waiting > 0, timeout)

    def _release(self) -> None:
        with self._changed:
            self._held = False
            self._changed.notify_all()


class BatchingThread:
    """Requests an event loop queues, taken in batches by one thread of the process: every
    request waiting (up to `max_batch`) at once, a lone one without waiting for company.
    The thread starts with the first request and ends after IDLE_SECONDS without one.
    Subclasses say what a batch is done with (`_handle`)."""

    thread_name = "gateway-batches"

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _enqueue(self, item: object) -> None:
        self._queue.put(item)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=self.thread_name, daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._handle(batch)

    def _handle(self, batch: list) -> None:
        raise NotImplementedError


def settle(outcomes: Iterable[tuple[asyncio.AbstractEventLoop, asyncio.Future, object]]) -> None:
    """Answer the waiting requests from the batch's thread, one wake-up per event loop:
    an exception is raised in its request, anything else is its result."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for loop, future, outcome in outcomes:
        by_loop.setdefault(loop, []).append((future, outcome))
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_all, settled)
        except RuntimeError:  # that loop has closed: nobody is waiting for the answer
            log.warning("%d webhooks committed after their server stopped", len(settled))


def _settle_all(settled: list[tuple[asyncio.Future, object]]) -> None:
    for future, outcome in settled:
        if future.cancelled():  # the client went away; the emergency is committed regardless
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


@dataclass
class _Pending:
    ctx: Context
    request: service.IntakeRequest
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


class GroupCommit(BatchingThread):
    thread_name = "gateway-group-commit"

    def __init__(self, engine: Engine | None, *, max_batch: int = 256) -> None:
        super().__init__(max_batch)
        self.engine = engine
        # Made with the first batch: an app that never writes (e.g. `taskforce gateway
        # openapi`) opens no database.
        self.checkpointer: WalCheckpointer | None = None
        # Held around every transaction of this writer; other writers of the process (the
        # background dispatch) take it too, so they queue here instead of in SQLite's busy
        # handler, which sleeps in steps of up to 100 ms.
        self.write_lock = IntakeFirstLock()

    async def open(self, ctx: Context, request: service.IntakeRequest) -> OpenResult:
        """Open (or repeat) an emergency; returns once it is committed. Raises DomainError."""
        loop = asyncio.get_running_loop()
        item = _Pending(ctx, request, loop, loop.create_future())
        self._enqueue(item)
        return await item.future

    def _handle(self, batch: list[_Pending]) -> None:
        # One context per transaction (in practice the gateway has one).
        while batch:
            ctx = batch[0].ctx
            same = [p for p in batch if p.ctx is ctx]
            batch = [p for p in batch if p.ctx is not ctx]
            outcomes = self.write(ctx, [p.request for p in same])
            settle((p.loop, p.future, o) for p, o in zip(same, outcomes, strict=True))

    def write(
        self, ctx: Context, requests: list[service.IntakeRequest]
    ) -> list[OpenResult | Exception]:
        """Write a batch in one transaction (one by one if it fails as a whole): each
        request's outcome, or the exception its own transaction raised."""
        if self.checkpointer is None:
            self.checkpointer = WalCheckpointer(self.engine or get_engine())
        try:
            with self.write_lock.intake(), unit_of_work(self.engine) as session:
                outcomes: list[OpenResult | Exception] = list(
                    service.open_emergencies(session, ctx, requests)
                )
            self.checkpointer.wrote()
        except Exception:
            log.warning("group commit of %d webhooks failed; writing one by one", len(requests))
            outcomes = [self._write_one(ctx, r) for r in requests]
        return outcomes

    def _write_one(self, ctx: Context, r: service.IntakeRequest) -> OpenResult | Exception:
        try:
            with self.write_lock.intake(), unit_of_work(self.engine) as session:
                return r.open_alone(session, ctx)
        except Exception as exc:  # answered to its own request (DomainError → 4xx, else 500)
            return exc
