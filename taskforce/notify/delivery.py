"""Deliver outbox rows through Apprise: claim, render, send per target, record, retry.

The cycle of one run (`deliver_pending`):

1. **Claim** due rows (pending/failing, `next_attempt_at <= now`, priority
   first) in one short transaction: `attempts += 1` and `next_attempt_at`
   moves one lease ahead. Another run skips them until the lease expires
   (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite serialises writers anyway).
2. **Plan**: the channels tagged with the row's audience, minus the targets an
   earlier attempt already delivered (DeliveryAttempt rows with ok=true).
   Each channel gets the full message or, when not cleared for the row's
   classification, a reference only.
3. **Send** every target in its own thread: a slow target costs its own time only.
4. **Record** each target's result the moment it returns, in its own
   transaction, so a crash loses at most the results of sends in flight.
5. **Settle** each row: delivered when every target has delivered; otherwise
   failing with exponential backoff, or dead after `max_attempts` with a
   `dead_letter` alert to the executive group through other channels. An
   emergency page that reached none of the primary's channels pages the
   primary's A/B backup (AB角) at once.

Delivery is at-least-once per target: see README, "Notifications".
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from apprise import Apprise
from apprise.common import NotifyFormat, NotifyType
from apprise.result import AppriseResultStatus
from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from taskforce import trail
from taskforce.context import Context
from taskforce.db import session_factory
from taskforce.notify.channels import Channel, ChannelSet, load_channels
from taskforce.notify.local_outbox import Sending, sending
from taskforce.notify.models import DeliveryAttempt, DeliveryStatus, OutboxMessage
from taskforce.notify.outbox import audiences_for, enqueue, ids_for_trail_entries
from taskforce.notify.readers import (
    AudienceClearances,
    audience_clearances,
    readers_in_database,
)
from taskforce.notify.render import cut, render_message
from taskforce.org.models import Member
from taskforce.policy.schema import Classification, Notifications

EMERGENCY_PAGE = "emergency_page"
DEAD_LETTER = "dead_letter"
DELIVERY_HEADER = "X-Taskforce-Delivery"  # lets a receiver drop a duplicate (README)
ERROR_MAX_CHARS = 500
ACTOR = "notify"
# How urgent a kind looks on targets that show it (colour, icon); everything else is info.
NOTIFY_TYPES = {
    EMERGENCY_PAGE: NotifyType.FAILURE,
    DEAD_LETTER: NotifyType.FAILURE,
    "item_turned_red": NotifyType.WARNING,
    "escalation": NotifyType.WARNING,
    "items_turned_red": NotifyType.WARNING,
    "items_escalated": NotifyType.WARNING,
    "warnings_escalated": NotifyType.WARNING,
    "warning_raised": NotifyType.WARNING,
    "audit_finding_severe": NotifyType.WARNING,
    "stage_overdue": NotifyType.WARNING,
    "issue_closed": NotifyType.SUCCESS,
}

Sessions = Callable[[], Session]


@dataclass(frozen=True)
class MessageSnapshot:
    """An outbox row as claimed: plain values, safe to use outside its session."""

    id: int
    key: str
    event_kind: str
    audience: str
    subject_type: str
    subject_id: str
    classification: Classification
    context: dict[str, Any]
    is_drill: bool
    priority: int
    attempts: int
    delivered_targets: frozenset[str] = frozenset()
    # The lowest clearance among the members the audience reaches (notify/readers.py;
    # public when it reaches none). None only for a snapshot made without the members
    # (a test's, or a report's count of messages): the channel's clearance decides alone.
    readers_cleared: Classification | None = None

    @classmethod
    def of(
        cls,
        row: OutboxMessage,
        delivered: Iterable[str] = (),
        clearances: AudienceClearances | None = None,
    ) -> MessageSnapshot:
        return cls(
            id=row.id,
            key=row.idempotency_key,
            event_kind=row.event_kind,
            audience=row.audience,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            classification=Classification(row.classification),
            context=dict(row.context or {}),
            is_drill=bool(row.is_drill),
            priority=row.priority,
            attempts=row.attempts,
            delivered_targets=frozenset(delivered),
            readers_cleared=None if clearances is None else clearances.of(row.audience),
        )


@dataclass(frozen=True)
class SendJob:
    message: MessageSnapshot
    channel: Channel
    title: str
    body: str
    redacted: bool

    @property
    def delivery_key(self) -> str:
        return f"{self.message.key}@{self.channel.name}"


@dataclass(frozen=True)
class TargetResult:
    message_id: int
    channel: str
    ok: bool
    error: str | None
    elapsed_seconds: float
    redacted: bool = False


@dataclass
class DeliveryReport:
    claimed: int = 0
    delivered: int = 0
    failing: int = 0
    dead: int = 0
    targets: list[TargetResult] = field(default_factory=list)
    backups_paged: list[str] = field(default_factory=list)
    dead_letters: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "claimed": self.claimed,
            "delivered": self.delivered,
            "failing": self.failing,
            "dead": self.dead,
            "targets_ok": sum(t.ok for t in self.targets),
            "targets_failed": sum(not t.ok for t in self.targets),
            "backups_paged": list(self.backups_paged),
            "dead_letters": list(self.dead_letters),
        }


def retry_delay(attempts: int, policy: Notifications) -> dt.timedelta:
    """Wait after the `attempts`-th failed attempt: base · 2^(attempts-1), capped at the max."""
    if attempts < 1:
        raise ValueError("attempts: must be >= 1 (the delay follows a failed attempt)")
    exponent = min(attempts - 1, 62)  # beyond this the cap applies anyway
    seconds = min(policy.backoff_base_seconds * 2**exponent, policy.backoff_max_seconds)
    return dt.timedelta(seconds=seconds)


def deliver_pending(
    db: Engine | sessionmaker | Sessions | None,
    ctx: Context,
    *,
    limit: int = 100,
    channels: ChannelSet | None = None,
    message_ids: Iterable[int] | None = None,
    trail_entry_ids: Iterable[int] | None = None,
    on_sent: Callable[[TargetResult], None] | None = None,
    write_lock: AbstractContextManager | None = None,
) -> DeliveryReport:
    """Send due outbox rows (at most `limit`), priority first; return what happened.

    `message_ids` / `trail_entry_ids` restrict the run to those rows, or to the
    rows a state change wrote (an emergency flow delivers its pages at once
    this way). Rows created during the run (backup pages, dead-letter alerts)
    are delivered in the same run. `on_sent` is called with each target's
    result after the send and before it is recorded.

    Rows are claimed in rounds of at most `max_parallel_sends`, so a round
    ends well inside the claim lease even when every target is slow.

    `write_lock`: held around each transaction (never around a send), to queue them
    in-process behind the other writers of this process (the gateway's dispatch thread:
    SQLite's busy handler sleeps while the intake writer holds the database).
    """
    if limit < 1:
        raise ValueError("limit: must be >= 1")
    sessions = _sessions(db)
    if write_lock is not None:
        sessions = _LockedSessions(sessions, write_lock)
    policy = ctx.policy.notifications
    if channels is None:
        channels = load_channels(overflow=policy.overflow)
    wanted_ids = set(message_ids) if message_ids is not None else None
    if trail_entry_ids is not None:
        with _transaction(sessions) as session:
            caused = set(ids_for_trail_entries(session, trail_entry_ids))
        wanted_ids = caused | (wanted_ids or set())
    report = DeliveryReport()
    # One pool of sending threads for the whole run. A pool per round started a dozen
    # threads per round: 13,000 for a burst of 4,700 emergencies' first pages, a sixth of
    # the dispatch thread's time (benchmarks/RESULTS.md, the gateway figure).
    with ThreadPoolExecutor(
        max_workers=policy.max_parallel_sends, thread_name_prefix="tf-notify"
    ) as pool:
        while report.claimed < limit:
            batch = min(limit - report.claimed, policy.max_parallel_sends)
            claimed = _claim(sessions, ctx, batch, wanted_ids)
            if not claimed:
                break
            report.claimed += len(claimed)
            created = _deliver_round(sessions, ctx, channels, claimed, report, on_sent, pool)
            if wanted_ids is not None:
                wanted_ids |= created
    return report


def plan_sends(
    message: MessageSnapshot, channels: ChannelSet, *, locale: str, limits: Notifications
) -> list[SendJob]:
    """The sends one attempt makes for `message`: one per channel not yet delivered.

    Pure: this is where redaction is decided, so the property test checks it here. A
    channel carries what both it and the audience's readers are cleared for.
    """
    jobs = []
    for channel in _targets(message, channels):
        if channel.name in message.delivered_targets:
            continue
        clearance = channel.clearance
        if message.readers_cleared is not None and message.readers_cleared.rank < clearance.rank:
            clearance = message.readers_cleared
        rendered = render_message(message, clearance=clearance, locale=locale, limits=limits)
        jobs.append(SendJob(message, channel, rendered.title, rendered.body, rendered.redacted))
    return jobs


# --- the cycle ------------------------------------------------------------------


def _deliver_round(
    sessions: Sessions,
    ctx: Context,
    channels: ChannelSet,
    claimed: list[MessageSnapshot],
    report: DeliveryReport,
    on_sent: Callable[[TargetResult], None] | None,
    pool: ThreadPoolExecutor,
) -> set[int]:
    policy = ctx.policy.notifications
    jobs: list[SendJob] = []
    pending: dict[int, int] = {}
    early: dict[int, list[TargetResult]] = {m.id: [] for m in claimed}
    for message in claimed:
        try:
            planned = plan_sends(message, channels, locale=ctx.policy.locale, limits=policy)
        except Exception as exc:  # a broken template fails this row, not the run
            planned = []
            early[message.id].append(
                TargetResult(message.id, "(render)", False, _short(f"render: {exc}"), 0.0)
            )
        jobs.extend(planned)
        pending[message.id] = len(planned)
    by_id = {m.id: m for m in claimed}
    results: dict[int, list[TargetResult]] = early
    created: set[int] = set()

    def settle(message_id: int, last: TargetResult | None = None) -> None:
        outcome = _settle(sessions, ctx, channels, by_id[message_id], results[message_id], last)
        if outcome.status == DeliveryStatus.delivered:
            report.delivered += 1
        elif outcome.status == DeliveryStatus.dead:
            report.dead += 1
        elif outcome.status == DeliveryStatus.failing:
            report.failing += 1
        if outcome.backup is not None:
            report.backups_paged.append(outcome.backup[0])
            created.add(outcome.backup[1])
        report.dead_letters.extend(sorted(outcome.dead_letters))
        created.update(outcome.dead_letters)

    for message_id, count in pending.items():
        if count == 0:
            settle(message_id)
    if not jobs:
        return created
    at = ctx.now()
    futures: dict[Future, SendJob] = {}
    try:
        for job in jobs:
            futures[pool.submit(_send, job, at, policy.send_timeout_seconds)] = job
        for future in as_completed(futures):
            job = futures[future]
            result = future.result()
            if on_sent is not None:
                on_sent(result)
            pending[job.message.id] -= 1
            results[job.message.id].append(result)
            if pending[job.message.id] == 0:
                # The row's last send: recorded in the transaction that settles the row
                # (one commit, not two: most pages have a single target).
                settle(job.message.id, last=result)
            else:
                _record(sessions, ctx, result)
            report.targets.append(result)
    except BaseException:
        # Recording failed: start no further sends whose results could not be
        # recorded either (each would be one more duplicate after the lease).
        for future in futures:
            future.cancel()
        wait(futures)
        raise
    return created


def _claim(
    sessions: Sessions, ctx: Context, limit: int, wanted_ids: set[int] | None
) -> list[MessageSnapshot]:
    now = ctx.now()
    lease = dt.timedelta(seconds=ctx.policy.notifications.claim_lease_seconds)
    with _transaction(sessions) as session:
        query = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status.in_([DeliveryStatus.pending, DeliveryStatus.failing]),
                OutboxMessage.next_attempt_at <= now,
            )
            .order_by(
                OutboxMessage.priority.desc(),
                OutboxMessage.next_attempt_at,
                OutboxMessage.id,
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if wanted_ids is not None:
            if not wanted_ids:
                return []
            query = query.where(OutboxMessage.id.in_(wanted_ids))
        rows = list(session.scalars(query))
        if not rows:
            return []
        delivered: dict[int, set[str]] = {}
        for message_id, target in session.execute(
            select(DeliveryAttempt.message_id, DeliveryAttempt.target).where(
                DeliveryAttempt.message_id.in_([r.id for r in rows]),
                DeliveryAttempt.ok.is_(True),
            )
        ):
            delivered.setdefault(message_id, set()).add(target)
        for row in rows:
            row.attempts += 1
            row.next_attempt_at = now + lease
        session.flush()
        # Read at each claim: a member whose clearance was lowered reads no more from then on.
        clearances = audience_clearances(readers_in_database(session))
        return [MessageSnapshot.of(r, delivered.get(r.id, ()), clearances) for r in rows]


def _send(job: SendJob, at: dt.datetime, timeout_seconds: int) -> TargetResult:
    token = sending.set(Sending(audience=job.message.audience, key=job.delivery_key, at=at))
    started = time.monotonic()
    try:
        apprise = Apprise()
        apprise.add(_for_this_send(job.channel, job.delivery_key))
        with apprise.notify(
            body=job.body,
            title=job.title,
            body_format=NotifyFormat.TEXT,
            notify_type=NOTIFY_TYPES.get(job.message.event_kind, NotifyType.INFO),
            timeout=timeout_seconds,
        ) as result:
            ok = result.status == AppriseResultStatus.SUCCESS
            error = None if ok else _error_text(result)
    except Exception as exc:  # one target's crash must not sink the others
        ok, error = False, _short(f"{type(exc).__name__}: {exc}")
    finally:
        sending.reset(token)
    return TargetResult(
        job.message.id, job.channel.name, ok, error, time.monotonic() - started, job.redacted
    )


def _for_this_send(channel: Channel, delivery_key: str):
    """The channel's service, with our delivery key as a header where the service has headers."""
    service = channel.service
    headers = getattr(service, "headers", None)
    if not isinstance(headers, dict):
        return service
    per_send = copy.copy(service)  # never mutate the shared instance other threads use
    per_send.headers = {**headers, DELIVERY_HEADER: delivery_key}
    return per_send


def _error_text(result) -> str:
    lines = [f"{result.status.name}"]
    for service_result in result:
        for entry in service_result.logs():
            message = getattr(entry, "message", None)
            if message and message not in lines:
                lines.append(str(message))
    return _short(": ".join([lines[0], " ".join(lines[1:])]) if len(lines) > 1 else lines[0])


def _record(sessions: Sessions, ctx: Context, result: TargetResult) -> None:
    """One send's result, committed at once: a crash after this never sends it again."""
    with _transaction(sessions) as session:
        _add_attempt(session, ctx, result)


# Built once and run on the session's connection with parameters: through the ORM, each
# call built its statement and went through the ORM's bulk-persistence path, which cost
# more than SQLite took to run it (a page costs these two, in a burst 15,000 times over).
_INSERT_ATTEMPT = insert(DeliveryAttempt.__table__)
_SETTLE_DELIVERED = (
    update(OutboxMessage.__table__)
    .where(
        OutboxMessage.__table__.c.id == bindparam("message_id"),
        OutboxMessage.__table__.c.status.in_([DeliveryStatus.pending, DeliveryStatus.failing]),
    )
    .values(
        status=DeliveryStatus.delivered,
        delivered_at=bindparam("now"),
        last_error=None,
        next_attempt_at=bindparam("now"),
    )
)


def _add_attempt(session: Session, ctx: Context, result: TargetResult) -> None:
    session.connection().execute(
        _INSERT_ATTEMPT,
        {
            "message_id": result.message_id,
            "target": result.channel,
            "ok": result.ok,
            "at": ctx.now(),
            "error": result.error,
        },
    )


@dataclass(frozen=True)
class _Settled:
    status: DeliveryStatus
    backup: tuple[str, int] | None = None  # (member code, outbox id) of a backup page
    dead_letters: frozenset[int] = frozenset()


def _settle(
    sessions: Sessions,
    ctx: Context,
    channels: ChannelSet,
    message: MessageSnapshot,
    results: list[TargetResult],
    last: TargetResult | None = None,
) -> _Settled:
    """Decide the row's state after this attempt; page a backup or dead-letter it.
    `last`: the attempt's last send, recorded in this same transaction."""
    policy = ctx.policy.notifications
    now = ctx.now()
    backup: tuple[str, int] | None = None
    with _transaction(sessions) as session:
        if last is not None:
            _add_attempt(session, ctx, last)
        wanted = {c.name for c in _targets(message, channels)}
        if wanted and results and all(r.ok for r in results):
            return _settle_delivered(session, message.id, now)
        row = session.get(OutboxMessage, message.id, with_for_update=True)
        if row is None or row.status in (DeliveryStatus.delivered, DeliveryStatus.dead):
            return _Settled(row.status if row else DeliveryStatus.dead)
        delivered = set(
            session.scalars(
                select(DeliveryAttempt.target).where(
                    DeliveryAttempt.message_id == row.id, DeliveryAttempt.ok.is_(True)
                )
            )
        )
        if wanted and wanted <= delivered:
            row.status, row.delivered_at, row.last_error = DeliveryStatus.delivered, now, None
            row.next_attempt_at = now
            return _Settled(DeliveryStatus.delivered)
        errors = [f"{r.channel}: {r.error}" for r in results if not r.ok]
        if not wanted:
            errors.append(
                f"no channel carries audience {message.audience!r} (tag it in {channels.source})"
            )
        row.last_error = _short("; ".join(errors) or "not delivered")
        if message.event_kind == EMERGENCY_PAGE and not delivered:
            backup = _page_backup(session, ctx, row)
        if row.attempts >= policy.max_attempts:
            row.status = DeliveryStatus.dead
            row.next_attempt_at = now
            alerts: set[int] = set()
            if message.event_kind != DEAD_LETTER:  # never alert about an alert
                alerts = _dead_letter(
                    session, ctx, row, failed={r.channel for r in results if not r.ok}
                )
            return _Settled(DeliveryStatus.dead, backup, frozenset(alerts))
        row.status = DeliveryStatus.failing
        row.next_attempt_at = now + retry_delay(row.attempts, policy)
        return _Settled(DeliveryStatus.failing, backup)


def _settle_delivered(session: Session, message_id: int, now: dt.datetime) -> _Settled:
    """Every send of this attempt arrived. Its sends were the row's targets not delivered
    before (`plan_sends`), so now every target is: the row is delivered, unless another run
    settled it meanwhile. Two statements, not the ORM's locking read, the read of the
    delivered targets and the flush (most of a page's cost in a burst, the gateway figure)."""
    settled = session.connection().execute(
        _SETTLE_DELIVERED, {"message_id": message_id, "now": now}
    )
    if settled.rowcount == 1:
        return _Settled(DeliveryStatus.delivered)
    status = session.scalar(select(OutboxMessage.status).where(OutboxMessage.id == message_id))
    return _Settled(status if status is not None else DeliveryStatus.dead)


def _page_backup(session: Session, ctx: Context, row: OutboxMessage) -> tuple[str, int] | None:
    """Page the A/B backup of the member an emergency page failed to reach (once per row)."""
    context = dict(row.context or {})
    code = context.get("member")
    if not code:
        return None
    primary = session.scalars(select(Member).where(Member.code == str(code))).one_or_none()
    backup = primary.backup if primary is not None else None
    paged = [str(c) for c in context.get("paged", [code])]
    if backup is None or not backup.active or backup.code in paged:
        return None
    level = Classification(row.classification)
    if primary.clearance.rank >= level.rank > backup.clearance.rank:
        # A backup who may not acknowledge it is no backup for a cleared primary (the
        # row is retried, and the chain escalates to those who may).
        return None
    new_context = {
        **context,
        "member": backup.code,
        "backup_for": str(code),
        "paged": [*paged, backup.code],
    }
    rows = enqueue(
        session,
        event_kind=EMERGENCY_PAGE,
        key=f"backup:{row.id}:{backup.code}",
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        classification=Classification(row.classification),
        context=new_context,
        at=ctx.now(),
        routing=ctx.policy.notifications,
        audiences=list(backup.contacts or [f"member-{backup.code}"]),
        is_drill=row.is_drill,
        priority=row.priority,
        trail_entry_id=row.trail_entry_id,
    )
    if not rows:
        return None  # paged already by an earlier attempt
    session.flush()
    trail.append(
        session,
        at=ctx.now(),
        actor=ACTOR,
        action="emergency_backup_paged",
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        payload={"message": row.id, "primary": str(code), "backup": backup.code},
        classification=Classification.internal,
    )
    return backup.code, rows[0].id


def _dead_letter(
    session: Session, ctx: Context, row: OutboxMessage, *, failed: set[str]
) -> set[int]:
    """Alert the executive group, through channels other than the ones that failed."""
    context = {
        "dead_message_id": row.id,
        "dead_event_kind": row.event_kind,
        "dead_audience": row.audience,
        "attempts": row.attempts,
        "last_error": cut(row.last_error or "", 200),
        "avoid_channels": sorted(failed),
    }
    policy = ctx.policy.notifications
    rows = enqueue(
        session,
        event_kind=DEAD_LETTER,
        key=f"dead-letter:{row.id}",
        subject_type="outbox_message",
        subject_id=row.id,
        classification=Classification.internal,  # ids and error text only, never content
        context=context,
        at=ctx.now(),
        routing=policy,
        audiences=audiences_for(DEAD_LETTER, policy, context),
        is_drill=row.is_drill,
        priority=row.priority,
    )
    if not rows:
        return set()
    session.flush()
    trail.append(
        session,
        at=ctx.now(),
        actor=ACTOR,
        action="notification_dead_lettered",
        subject_type="outbox_message",
        subject_id=row.id,
        payload={k: v for k, v in context.items() if k != "last_error"},
        classification=Classification.internal,
    )
    return {r.id for r in rows}


def _targets(message: MessageSnapshot, channels: ChannelSet) -> list[Channel]:
    avoid = (
        set(message.context.get("avoid_channels", ()))
        if message.event_kind == DEAD_LETTER
        else set()
    )
    return [c for c in channels.for_audience(message.audience) if c.name not in avoid]


# --- plumbing --------------------------------------------------------------------


def _sessions(db: Engine | sessionmaker | Sessions | None) -> Sessions:
    if db is None or isinstance(db, Engine):
        return session_factory(db)
    return db


@dataclass(frozen=True)
class _LockedSessions:
    """Sessions whose transactions `_transaction` runs under `lock` (see deliver_pending)."""

    sessions: Sessions
    lock: AbstractContextManager

    def __call__(self) -> Session:
        return self.sessions()


@contextlib.contextmanager
def _transaction(sessions: Sessions) -> Iterator[Session]:
    lock = sessions.lock if isinstance(sessions, _LockedSessions) else contextlib.nullcontext()
    with lock:
        session = sessions()
        try:
            with session.begin():
                yield session
        finally:
            session.close()


def _short(text: str) -> str:
    return cut(text, ERROR_MAX_CHARS)
