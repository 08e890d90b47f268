"""The gateway's intake writer and its paging in a process of their own.

With `gateway.intake_process` (config/taskforce.yaml) the gateway forks a child at start-up.
The server process keeps HTTP, authentication and validation; a thread of it sends each
batch of webhooks down a pipe, the child writes the batch in one transaction (the group
commit, `GroupCommit.write`) and answers, and the thread settles the requests' futures,
so every 202 still follows its commit. The child also pages and dispatches what it opened
(`BackgroundDispatch`), but holds that while batches keep coming: the paging starts when
no batch came for `PAGING_IDLE_SECONDS`, or when the oldest held emergency has waited
`gateway.paging_hold_seconds`.

Why: a webhook costs the server about 0.25 ms of event loop and 0.25 ms of writing, and
in one process both need the interpreter lock, so intake ran at 0.3-0.48 of the empty
endpoint's rate on two cores (0.2 on PostgreSQL); in two processes each half has its own
(0.45-0.60, and 0.42). The writer's child
without the hold was slower than one process: its paging (Apprise's sixteen senders) took
as much of the child's lock as the writer, where in one process the event loop crowds it
out until the burst is over (benchmarks/RESULTS.md, sessions 7, 22 and 24).

Nothing accepted is lost when the child dies: a request answered 202 was committed; a
batch whose answer never came is answered 500 (its sender retries, and a committed
emergency takes the retry as a repeat); a committed `pending_dispatch` emergency not
yet paged is paged by the dispatch sweep (`dispatch-pending-emergencies`). The server
forks a new child for the next batch.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy import Engine

from taskforce.context import Context
from taskforce.db import get_engine
from taskforce.emergency import service
from taskforce.emergency.dispatch import BackgroundDispatch, Dispatcher
from taskforce.emergency.forms import EmergencyIntake, OpenResult
from taskforce.errors import DomainError, IllegalTransition, NotFound
from taskforce.gateway.group_commit import BatchingThread, GroupCommit, settle

log = logging.getLogger(__name__)
# The child starts its held paging once no batch came for this long: a burst's batches
# follow each other within a few milliseconds.
PAGING_IDLE_SECONDS = 0.05
# How long `close` waits for the child to page what it holds and exit.
CLOSE_SECONDS = 60
# DomainErrors cross the pipe by name: pickling one loses its field (its args are the text).
_ERRORS: dict[str, type[DomainError]] = {
    cls.__name__: cls for cls in (DomainError, NotFound, IllegalTransition)
}


class IntakeProcessError(RuntimeError):
    """The child ended before answering a batch, or failed writing it (answered 500)."""


@dataclass
class _Pending:
    request: service.IntakeRequest
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


class IntakeProcess(BatchingThread):
    """`GroupCommit.open`, the writing done by a child process (see the module)."""

    thread_name = "gateway-intake-pipe"

    def __init__(
        self,
        engine: Engine | None,
        ctx_factory: Callable[[], Context],
        dispatcher: Dispatcher,
        *,
        paging_hold_seconds: float,
        max_batch: int = 256,
    ) -> None:
        super().__init__(max_batch)
        self.engine = engine
        self.ctx_factory, self.dispatcher = ctx_factory, dispatcher
        self.paging_hold_seconds = paging_hold_seconds
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The child's process id (None before the first start)."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Fork the child: at start-up, before the server has threads or sockets to copy."""
        with self._lock:
            if self._process is None or not self._process.is_alive():
                self._fork()

    def _fork(self) -> None:
        if self._conn is not None:  # the pipe of a child that ended: not to be inherited
            self._conn.close()
        engine = self.engine or get_engine()
        context = multiprocessing.get_context("fork")
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=_child,
            args=(child_end, parent_end, engine, self.ctx_factory, self.dispatcher),
            kwargs={"paging_hold_seconds": self.paging_hold_seconds},
            name="gateway-intake-writer",
            daemon=False,  # it must finish its paging when the server stops, not be killed
        )
        process.start()
        child_end.close()
        self._conn, self._process = parent_end, process

    async def open(self, ctx: Context, request: service.IntakeRequest) -> OpenResult:
        """Open (or repeat) an emergency; returns once the child committed it. Raises
        DomainError, or IntakeProcessError when the child ended before answering."""
        del ctx  # the child writes with its own context (its clock, the same policy)
        loop = asyncio.get_running_loop()
        item = _Pending(request, loop, loop.create_future())
        self._enqueue(item)
        return await item.future

    def close(self) -> None:
        """Close the pipe: the child pages what it holds, starts what is queued, and exits."""
        with self._lock:
            self._closed = True
            conn, process = self._conn, self._process
        if conn is not None:
            conn.close()
        if process is not None:
            process.join(CLOSE_SECONDS)
            if process.is_alive():
                log.warning(
                    "the intake writer (pid %s) did not exit within %d s; the dispatch "
                    "sweep pages what it held",
                    process.pid,
                    CLOSE_SECONDS,
                )
                process.kill()

    def _handle(self, batch: list[_Pending]) -> None:
        answers = self._exchange(batch)
        settle((p.loop, p.future, _outcome(a)) for p, a in zip(batch, answers, strict=True))

    def _exchange(self, batch: list[_Pending]) -> list[Any]:
        """The child's answers to `batch`, or IntakeProcessError for each."""
        with self._lock:
            if self._closed:
                return [IntakeProcessError("the gateway is stopping") for _ in batch]
            if self._process is None or not self._process.is_alive():
                if self._process is not None:
                    log.warning(
                        "the intake writer (pid %s) had ended (exit code %s); starting another",
                        self._process.pid,
                        self._process.exitcode,
                    )
                self._fork()
            conn, process = self._conn, self._process
        assert conn is not None and process is not None
        try:
            conn.send([_message(p.request) for p in batch])
            return conn.recv()
        except (EOFError, OSError) as exc:
            process.join(1)
            log.error(
                "the intake writer (pid %s) ended before answering %d webhooks (exit code "
                "%s: %s); they are answered 500 and the next batch starts another",
                process.pid,
                len(batch),
                process.exitcode,
                type(exc).__name__,
            )
            return [IntakeProcessError("the intake writer ended before answering") for _ in batch]


def _message(r: service.IntakeRequest) -> tuple:
    # Plain values: pickling the pydantic model itself costs several times more.
    return (dict(r.intake.__dict__), r.source, r.dedup_key, r.actor, r.is_drill)


def _answer(outcome: OpenResult | Exception) -> tuple:
    if isinstance(outcome, OpenResult):
        return (
            "ok",
            outcome.emergency_id,
            outcome.created,
            outcome.status,
            outcome.level,
            outcome.is_drill,
            outcome.raised_from,
        )
    if isinstance(outcome, DomainError):
        kind = type(outcome).__name__ if type(outcome).__name__ in _ERRORS else "DomainError"
        return ("refused", kind, outcome.message, outcome.field, outcome.allowed)
    return ("failed", type(outcome).__name__)


def _outcome(answer: Any) -> OpenResult | Exception:
    if isinstance(answer, Exception):
        return answer
    if answer[0] == "ok":
        emergency_id, created, status, level, is_drill, raised_from = answer[1:]
        # A raise's page (`send_now`) is the child's to send: the server sends nothing.
        return OpenResult.model_construct(
            emergency_id=emergency_id,
            created=created,
            status=status,
            level=level,
            is_drill=is_drill,
            raised_from=raised_from,
            send_now=(),
        )
    if answer[0] == "refused":
        kind, message, field, allowed = answer[1:]
        return _ERRORS[kind](message, field=field, allowed=allowed)
    return IntakeProcessError(f"the intake writer failed ({answer[1]}; see its log)")


# --- the child ---------------------------------------------------------------------------


def _child(
    conn: Connection,
    parent_end: Connection,
    engine: Engine,
    ctx_factory: Callable[[], Context],
    dispatcher: Dispatcher,
    *,
    paging_hold_seconds: float,
) -> None:
    # The server's end, copied by the fork: closed, so the pipe ends when the server's does.
    parent_end.close()
    # Ctrl-C and a service manager's SIGTERM reach the whole process group: the child
    # ends when the server closes the pipe, after paging what it holds, not before.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    engine.dispose(close=False)  # the server's pooled connections are not this process's
    _forget_inherited_threads()
    writer = GroupCommit(engine)
    dispatch = BackgroundDispatch(engine, ctx_factory, dispatcher, write_lock=writer.write_lock)
    dispatch.start()
    held = HeldPaging(dispatch, paging_hold_seconds)
    while True:
        if held and not conn.poll(held.wait_seconds()):
            held.release()
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the server closed the pipe (or died): finish and exit
            break
        requests = [
            service.IntakeRequest(EmergencyIntake.model_construct(**fields), *rest)
            for fields, *rest in message
        ]
        outcomes = writer.write(ctx_factory(), requests)
        for outcome in outcomes:
            if not isinstance(outcome, OpenResult | DomainError):
                log.error("intake write failed", exc_info=outcome)
        try:
            conn.send([_answer(o) for o in outcomes])
        except OSError:
            break
        held.add(requests, outcomes)
    held.release()
    dispatch.close()
    conn.close()


def _forget_inherited_threads() -> None:
    """Drop thread pools the fork copied without their threads.

    Apprise sends through one module-level executor; a server process that had sent a
    notification before this fork (a child started again after a crash, or a test process)
    left it here with worker threads that do not exist in the child, and every send waited
    out Apprise's 30 s timeout (found by tests/gateway/test_intake_process.py)."""
    import apprise.apprise

    if hasattr(apprise.apprise, "_shared_executor"):
        apprise.apprise._shared_executor = None
        apprise.apprise._shared_executor_lock = threading.Lock()


class HeldPaging:
    """The child's paging, held while batches keep coming (see the module)."""

    def __init__(
        self,
        dispatch: BackgroundDispatch,
        hold_seconds: float,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dispatch, self.hold_seconds, self.now = dispatch, hold_seconds, now
        self.created: list[tuple[str, str]] = []
        self.send_now: list[int] = []
        self.since: float | None = None

    def __bool__(self) -> bool:
        return self.since is not None

    def add(self, requests: list[service.IntakeRequest], outcomes: list) -> None:
        for request, outcome in zip(requests, outcomes, strict=True):
            if not isinstance(outcome, OpenResult):
                continue
            if outcome.created:
                self.created.append((outcome.emergency_id, request.actor))
            elif outcome.send_now:
                self.send_now.extend(outcome.send_now)
        if (self.created or self.send_now) and self.since is None:
            self.since = self.now()
        if self.since is not None and self.now() - self.since >= self.hold_seconds:
            self.release()

    def wait_seconds(self) -> float:
        """How long to wait for the next batch before paging."""
        assert self.since is not None
        left = self.hold_seconds - (self.now() - self.since)
        return max(0.0, min(PAGING_IDLE_SECONDS, left))

    def release(self) -> None:
        for public_id, actor in self.created:
            self.dispatch.submit(public_id, actor=actor)
        if self.send_now:
            self.dispatch.send_now(self.send_now)
        self.created, self.send_now, self.since = [], [], None
