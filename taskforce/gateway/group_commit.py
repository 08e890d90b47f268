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

If a batch fails as a whole (e.g. a unique-index race with another gateway process on
PostgreSQL), its requests are written again one by one with `open_emergency`, each in
its own transaction, so one bad request never fails the others.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass

from sqlalchemy import Engine

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency import service
from taskforce.emergency.forms import OpenResult

log = logging.getLogger(__name__)
# The writer thread ends after this long without work; the next request restarts it.
IDLE_SECONDS = 5


@dataclass
class _Pending:
    ctx: Context
    request: service.IntakeRequest
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


class GroupCommit:
    def __init__(self, engine: Engine | None, *, max_batch: int = 256) -> None:
        self.engine, self.max_batch = engine, max_batch
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # Held around every transaction of this writer; other writers of the process (the
        # background dispatch) take it too, so they queue here instead of in SQLite's busy
        # handler, which sleeps in steps of up to 100 ms.
        self.write_lock = threading.Lock()

    async def open(self, ctx: Context, request: service.IntakeRequest) -> OpenResult:
        """Open (or repeat) an emergency; returns once it is committed. Raises DomainError."""
        loop = asyncio.get_running_loop()
        item = _Pending(ctx, request, loop, loop.create_future())
        self._queue.put(item)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="gateway-group-commit", daemon=True
                )
                self._thread.start()
        return await item.future

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
            # One context per transaction (in practice the gateway has one).
            while batch:
                ctx = batch[0].ctx
                same = [p for p in batch if p.ctx is ctx]
                batch = [p for p in batch if p.ctx is not ctx]
                self._write(ctx, same)

    def _write(self, ctx: Context, batch: list[_Pending]) -> None:
        try:
            with self.write_lock, unit_of_work(self.engine) as session:
                outcomes = service.open_emergencies(session, ctx, [p.request for p in batch])
        except Exception:
            log.warning("group commit of %d webhooks failed; writing one by one", len(batch))
            outcomes = [self._write_one(ctx, p.request) for p in batch]
        # One wake-up per event loop, not one per request.
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for pending, outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(pending.loop, []).append((pending.future, outcome))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_all, settled)
            except RuntimeError:  # that loop has closed: nobody is waiting for the answer
                log.warning("%d webhooks committed after their server stopped", len(settled))

    def _write_one(self, ctx: Context, r: service.IntakeRequest) -> OpenResult | Exception:
        try:
            with self.write_lock, unit_of_work(self.engine) as session:
                return service.open_emergency(
                    session,
                    ctx,
                    r.intake,
                    source=r.source,
                    dedup_key=r.dedup_key,
                    actor=r.actor,
                    is_drill=r.is_drill,
                )
        except Exception as exc:  # answered to its own request (DomainError → 4xx, else 500)
            return exc


def _settle_all(settled: list[tuple[asyncio.Future, OpenResult | Exception]]) -> None:
    for future, outcome in settled:
        if future.cancelled():  # the client went away; the emergency is committed regardless
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
