"""Delivery through Apprise to a real HTTP receiver on 127.0.0.1 (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import select, update

from taskforce.db import unit_of_work
from taskforce.notify.delivery import DELIVERY_HEADER, TargetResult, deliver_pending, retry_delay
from taskforce.notify.models import DeliveryAttempt, DeliveryStatus, OutboxMessage
from taskforce.policy.schema import Classification
from taskforce.trail.models import TrailEntry
from tests.notify.conftest import put, with_locale, with_notifications


def _rows(engine) -> dict[int, OutboxMessage]:
    with unit_of_work(engine) as s:
        return {r.id: r for r in s.scalars(select(OutboxMessage))}


def _attempts(engine, message_id: int) -> list[DeliveryAttempt]:
    with unit_of_work(engine) as s:
        return list(
            s.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.message_id == message_id)
                .order_by(DeliveryAttempt.id)
            )
        )


def test_a_message_arrives_once_and_is_recorded(engine, ctx, receiver, make_channels):
    channels = make_channels(("hook", "internal", receiver.url("/exec"), ["executive"]))
    [message_id] = put(
        engine, ctx, key="k1", audiences=["executive"], context={"title": "Permit backlog"}
    )

    report = deliver_pending(engine, ctx, channels=channels)

    assert (report.claimed, report.delivered) == (1, 1)
    [arrival] = receiver.at("/exec")
    assert "Permit backlog" in arrival.payload["title"]
    assert arrival.headers[DELIVERY_HEADER] == "k1:executive@hook"
    row = _rows(engine)[message_id]
    assert row.status == DeliveryStatus.delivered and row.delivered_at == ctx.now()
    assert [(a.target, a.ok) for a in _attempts(engine, message_id)] == [("hook", True)]
    # A re-run, now or much later, never sends a delivered row again.
    assert deliver_pending(engine, ctx, channels=channels).claimed == 0
    ctx.clock.advance(days=30)
    assert deliver_pending(engine, ctx, channels=channels).claimed == 0
    assert len(receiver.at("/exec")) == 1


def test_receiver_down_then_up_each_message_arrives_exactly_once(
    engine, ctx, receiver, make_channels
):
    channels = make_channels(("hook", "internal", receiver.url("/exec"), ["executive"]))
    ids = [put(engine, ctx, key=f"k{i}", audiences=["executive"])[0] for i in range(3)]
    receiver.stop()

    down = deliver_pending(engine, ctx, channels=channels)

    assert (down.claimed, down.failing, down.delivered) == (3, 3, 0)
    rows = _rows(engine)
    for message_id in ids:
        assert rows[message_id].status == DeliveryStatus.failing
        assert rows[message_id].attempts == 1
        assert "hook" in rows[message_id].last_error
        [attempt] = _attempts(engine, message_id)
        assert not attempt.ok and attempt.error
    # Nothing is retried before the backoff has passed.
    assert deliver_pending(engine, ctx, channels=channels).claimed == 0

    receiver.start()  # back up, same port
    ctx.clock.advance(seconds=retry_delay(1, ctx.policy.notifications).total_seconds())
    up = deliver_pending(engine, ctx, channels=channels)

    assert (up.claimed, up.delivered) == (3, 3)
    keys = sorted(a.headers[DELIVERY_HEADER] for a in receiver.at("/exec"))
    assert keys == ["k0:executive@hook", "k1:executive@hook", "k2:executive@hook"]
    ctx.clock.advance(hours=12)
    assert deliver_pending(engine, ctx, channels=channels).claimed == 0
    assert len(receiver.at("/exec")) == 3
    assert all(r.status == DeliveryStatus.delivered for r in _rows(engine).values())


def test_a_retry_sends_only_to_the_targets_not_yet_delivered(engine, ctx, receiver, make_channels):
    channels = make_channels(
        ("im", "internal", receiver.url("/im"), ["executive"]),
        ("mail", "internal", receiver.url("/mail"), ["executive"]),
    )
    [message_id] = put(engine, ctx, key="k", audiences=["executive"])
    receiver.failing.add("/mail")

    first = deliver_pending(engine, ctx, channels=channels)

    assert first.failing == 1
    assert len(receiver.at("/im")) == 1 and len(receiver.at("/mail")) == 1
    receiver.failing.clear()
    ctx.clock.advance(seconds=retry_delay(1, ctx.policy.notifications).total_seconds())
    second = deliver_pending(engine, ctx, channels=channels)

    assert second.delivered == 1
    assert [t.channel for t in second.targets] == ["mail"]
    assert len(receiver.at("/im")) == 1 and len(receiver.at("/mail")) == 2
    outcome = [(a.target, a.ok) for a in _attempts(engine, message_id)]
    assert sorted(outcome) == [("im", True), ("mail", False), ("mail", True)]


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing on the way catches it."""


def test_a_crash_between_sending_and_recording_resends_only_the_unrecorded_target(
    engine, ctx, receiver, make_channels
):
    channels = make_channels(
        ("im", "internal", receiver.url("/im"), ["executive"]),
        ("mail", "internal", receiver.url("/mail"), ["executive"]),
    )
    [message_id] = put(engine, ctx, key="k", audiences=["executive"])
    seen: list[TargetResult] = []

    def crash_on_the_second_send(result: TargetResult) -> None:
        seen.append(result)
        if len(seen) == 2:
            raise Crash  # the receiver has it; our database never hears of it

    with pytest.raises(Crash):
        deliver_pending(engine, ctx, channels=channels, on_sent=crash_on_the_second_send)

    recorded, lost = seen[0].channel, seen[1].channel
    assert [(a.target, a.ok) for a in _attempts(engine, message_id)] == [(recorded, True)]
    row = _rows(engine)[message_id]
    assert row.status == DeliveryStatus.pending  # never settled
    lease = dt.timedelta(seconds=ctx.policy.notifications.claim_lease_seconds)
    assert row.next_attempt_at == ctx.now() + lease  # claimed: other runs keep off it
    assert deliver_pending(engine, ctx, channels=channels).claimed == 0

    ctx.clock.advance(seconds=lease.total_seconds())
    rerun = deliver_pending(engine, ctx, channels=channels)

    assert rerun.delivered == 1 and [t.channel for t in rerun.targets] == [lost]
    assert len(receiver.at(f"/{recorded}")) == 1  # recorded: never sent again
    resent = receiver.at(f"/{lost}")
    assert len(resent) == 2  # the one send in the crash window, at most once more
    assert resent[0].headers[DELIVERY_HEADER] == resent[1].headers[DELIVERY_HEADER]
    ctx.clock.advance(days=1)
    assert deliver_pending(engine, ctx, channels=channels).claimed == 0


def test_one_slow_target_does_not_delay_the_others(engine, ctx, receiver, make_channels):
    receiver.delays["/slow"] = 3.0
    channels = make_channels(
        ("slow", "internal", receiver.url("/slow"), ["leadership"]),
        ("fast-a", "internal", receiver.url("/fast-a"), ["executive"]),
        ("fast-b", "internal", receiver.url("/fast-b"), ["leadership", "executive"]),
    )
    put(engine, ctx, key="lead", audiences=["leadership"], priority=9)
    put(engine, ctx, key="exec", audiences=["executive"])
    recorded_at: dict[str, list[float]] = {}
    started = time.monotonic()

    report = deliver_pending(
        engine,
        ctx,
        channels=channels,
        on_sent=lambda r: recorded_at.setdefault(r.channel, []).append(time.monotonic() - started),
    )

    total = time.monotonic() - started
    assert report.delivered == 2
    elapsed = {t.channel: t.elapsed_seconds for t in report.targets}
    assert elapsed["slow"] >= 3.0
    for path in ("/fast-a", "/fast-b"):
        assert all(a.arrived - started < 1.0 for a in receiver.at(path))
    for name in ("fast-a", "fast-b"):
        assert all(t < 1.0 for t in recorded_at[name]), recorded_at
    assert total < 3.0 + 1.5  # the run costs the slow target's time, not the sum


def test_backoff_schedule_boundaries(policy):
    n = policy.notifications.model_copy(
        update={"backoff_base_seconds": 30, "backoff_max_seconds": 3600}
    )
    assert [retry_delay(a, n).total_seconds() for a in range(1, 10)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]
    assert retry_delay(10_000, n).total_seconds() == 3600  # no overflow, still the cap
    with pytest.raises(ValueError, match="attempts"):
        retry_delay(0, n)


def test_a_failed_row_is_due_exactly_at_its_backoff(engine, ctx, receiver, make_channels):
    channels = make_channels(("hook", "internal", receiver.url("/x"), ["executive"]))
    [message_id] = put(engine, ctx, key="k", audiences=["executive"])
    receiver.failing.add("/x")
    deliver_pending(engine, ctx, channels=channels)
    wait = retry_delay(1, ctx.policy.notifications)
    assert _rows(engine)[message_id].next_attempt_at == ctx.now() + wait

    ctx.clock.advance(seconds=wait.total_seconds() - 0.001)
    assert deliver_pending(engine, ctx, channels=channels).claimed == 0
    ctx.clock.advance(seconds=0.001)
    assert deliver_pending(engine, ctx, channels=channels).claimed == 1
    assert _rows(engine)[message_id].next_attempt_at == ctx.now() + retry_delay(
        2, ctx.policy.notifications
    )


def test_dead_letter_after_max_attempts_alerts_executive_through_another_channel(
    engine, ctx, receiver, make_channels
):
    ctx = with_notifications(ctx, max_attempts=3)
    channels = make_channels(
        ("broken", "internal", receiver.url("/broken"), ["member-E3", "executive"]),
        ("alarm", "internal", receiver.url("/alarm"), ["executive"]),
    )
    [message_id] = put(engine, ctx, key="k", audiences=["member-E3"])
    receiver.failing.add("/broken")

    for attempt in (1, 2):
        report = deliver_pending(engine, ctx, channels=channels)
        assert report.failing == 1 and report.dead == 0
        ctx.clock.advance(seconds=retry_delay(attempt, ctx.policy.notifications).total_seconds())
    last = deliver_pending(engine, ctx, channels=channels)

    assert last.dead == 1 and len(last.dead_letters) == 1
    rows = _rows(engine)
    assert rows[message_id].status == DeliveryStatus.dead
    alert = rows[last.dead_letters[0]]
    assert (alert.event_kind, alert.audience) == ("dead_letter", "executive")
    assert alert.status == DeliveryStatus.delivered  # in the same run
    assert len(receiver.at("/broken")) == 3  # never used for the alert
    [arrival] = receiver.at("/alarm")
    assert str(message_id) in arrival.payload["message"]
    with unit_of_work(engine) as s:
        actions = list(s.scalars(select(TrailEntry.action)))
    assert "notification_dead_lettered" in actions
    ctx.clock.advance(days=1)
    assert deliver_pending(engine, ctx, channels=channels).claimed == 0


def _page_that_fails(engine, ctx, receiver, member, classification, *, level, title) -> int:
    """A page to `member` whose phone (receiver path /<member lower case>) refuses it."""
    receiver.failing.add(f"/{member.lower()}")
    [page] = put(
        engine,
        ctx,
        key=f"page-{member}",
        audiences=[f"member-{member}"],
        event_kind="emergency_page",
        classification=classification,
        context={"member": member, "level": level, "title": title},
        priority=100,
    )
    return page


def test_an_emergency_page_that_fails_pages_the_ab_backup_at_once(
    engine, ctx, receiver, make_channels
):
    channels = make_channels(
        ("e1-phone", "secret", receiver.url("/e1"), ["member-E1"]),
        ("e2-phone", "secret", receiver.url("/e2"), ["member-E2"]),
    )
    page = _page_that_fails(
        engine, ctx, receiver, "E1", Classification.secret, level="I", title="Data centre fire"
    )

    report = deliver_pending(engine, ctx, channels=channels, message_ids=[page])

    assert report.backups_paged == ["E2"]
    [arrival] = receiver.at("/e2")
    assert "E1" in arrival.payload["message"] and "Data centre fire" in arrival.payload["title"]
    rows = _rows(engine)
    assert rows[page].status == DeliveryStatus.failing
    backup = next(r for r in rows.values() if r.audience == "member-E2")
    assert backup.status == DeliveryStatus.delivered and backup.context["backup_for"] == "E1"
    # The primary keeps being retried, but the backup is paged once.
    ctx.clock.advance(seconds=retry_delay(1, ctx.policy.notifications).total_seconds())
    again = deliver_pending(engine, ctx, channels=channels)
    assert again.backups_paged == [] and len(receiver.at("/e2")) == 1


def test_a_backup_not_cleared_for_a_page_is_not_paged_for_a_cleared_primary(
    engine, ctx, receiver, make_channels
):
    """W3's A/B backup is W4, cleared for public material only: an internal page W3 missed
    is not handed to someone whose acknowledgement would be refused; it is retried, and the
    chain escalates to those who may answer."""
    channels = make_channels(
        ("w3-phone", "internal", receiver.url("/w3"), ["member-W3"]),
        ("w4-phone", "internal", receiver.url("/w4"), ["member-W4"]),
    )
    page = _page_that_fails(
        engine,
        ctx,
        receiver,
        "W3",
        Classification.internal,
        level="III",
        title="Data exchange down",
    )
    report = deliver_pending(engine, ctx, channels=channels, message_ids=[page])
    assert report.backups_paged == [] and receiver.at("/w4") == []
    assert _rows(engine)[page].status == DeliveryStatus.failing


def test_a_secret_record_reaches_an_uncleared_channel_as_a_reference_only(
    engine, ctx, receiver, make_channels
):
    ctx = with_locale(ctx, "en")
    channels = make_channels(
        ("secure-im", "secret", receiver.url("/secure"), ["leadership"]),
        ("sms", "internal", receiver.url("/sms"), ["leadership"]),
    )
    put(
        engine,
        ctx,
        key="s",
        audiences=["leadership"],
        event_kind="vote_requested",
        classification=Classification.secret,
        context={"title": "Merger of bureau X", "summary": "budget 12,000,000", "number": "I-7"},
        subject_id="7",
    )

    deliver_pending(engine, ctx, channels=channels)

    [secure] = receiver.texts("/secure")
    [sms] = receiver.texts("/sms")
    assert "Merger of bureau X" in secure and "budget 12,000,000" in secure
    for leaked in ("Merger", "12,000,000", "I-7"):
        assert leaked not in sms
    assert "issue 7" in sms and "read it in the system" in sms


def _internal_and_public(engine, ctx, *, internal_to: list[str], public_to: str) -> None:
    """An internal decision ("Shared catalogue gaps", TF-2026-00004) to each of `internal_to`,
    and a public one ("Open data day", TF-2026-00005) to `public_to`."""
    for audience in internal_to:
        put(
            engine,
            ctx,
            key=f"internal-{audience}",
            audiences=[audience],
            event_kind="decision_recorded",
            classification=Classification.internal,
            context={"title": "Shared catalogue gaps", "number": "TF-2026-00004"},
            subject_id="4",
        )
    put(
        engine,
        ctx,
        key="public",
        audiences=[public_to],
        event_kind="decision_recorded",
        classification=Classification.public,
        context={"title": "Open data day", "number": "TF-2026-00005"},
        subject_id="5",
    )


def test_an_audience_with_a_member_cleared_below_the_record_gets_a_reference_only(
    engine, ctx, receiver, make_channels
):
    """The channel is cleared for internal, but wg:data reaches W4, cleared for public
    material only (config/org.yaml): its internal message arrives as a reference. wg:approval
    (every member internal) reads the same message in full; a public one reaches wg:data in
    full. A member's clearance lowered later counts from the next claim on."""
    from taskforce.org.models import Member

    ctx = with_locale(ctx, "en")
    channels = make_channels(
        ("mail-data", "internal", receiver.url("/data"), ["wg:data"]),
        ("mail-approval", "internal", receiver.url("/approval"), ["wg:approval"]),
    )
    _internal_and_public(engine, ctx, internal_to=["wg:data", "wg:approval"], public_to="wg:data")

    deliver_pending(engine, ctx, channels=channels)

    to_data = receiver.texts("/data")
    [approval] = receiver.texts("/approval")
    assert "Shared catalogue gaps" in approval
    assert len(to_data) == 2 and any("Open data day" in text for text in to_data)
    [reference] = [text for text in to_data if "Open data day" not in text]
    assert "Shared catalogue gaps" not in reference and "TF-2026-00004" not in reference
    assert "read it in the system" in reference

    with unit_of_work(engine) as s:  # W1 of wg:approval loses the internal clearance
        s.execute(update(Member).where(Member.code == "W1").values(clearance=Classification.public))
    put(
        engine,
        ctx,
        key="later",
        audiences=["wg:approval"],
        event_kind="decision_recorded",
        classification=Classification.internal,
        context={"title": "Permit reform", "number": "TF-2026-00006"},
        subject_id="6",
    )
    deliver_pending(engine, ctx, channels=channels)
    later = receiver.texts("/approval")[-1]
    assert "Permit reform" not in later and "read it in the system" in later


def test_an_audience_without_a_channel_fails_with_a_clear_error(
    engine, ctx, make_channels, receiver
):
    channels = make_channels(("hook", "internal", receiver.url("/x"), ["executive"]))
    [message_id] = put(engine, ctx, key="k", audiences=["wg:nowhere"])

    report = deliver_pending(engine, ctx, channels=channels)

    assert report.failing == 1 and not report.targets
    assert "no channel carries audience 'wg:nowhere'" in _rows(engine)[message_id].last_error


def test_priority_first_and_limit(engine, ctx, receiver, make_channels):
    channels = make_channels(("hook", "internal", receiver.url("/x"), ["executive"]))
    put(engine, ctx, key="low", audiences=["executive"], priority=0)
    [urgent] = put(engine, ctx, key="urgent", audiences=["executive"], priority=100)

    report = deliver_pending(engine, ctx, channels=channels, limit=1)

    assert report.claimed == 1 and report.targets[0].message_id == urgent
    assert deliver_pending(engine, ctx, channels=channels, limit=5).claimed == 1


def test_a_step_delivers_just_the_notifications_it_wrote(engine, ctx, receiver, make_channels):
    from taskforce import events

    channels = make_channels(("pager", "secret", receiver.url("/pager"), ["oncall", "executive"]))
    [other] = put(engine, ctx, key="routine", audiences=["executive"])
    with unit_of_work(engine) as session:
        entry = events.record(
            session,
            ctx.policy,
            at=ctx.now(),
            actor="monitoring",
            action="emergency_opened",
            subject_type="emergency",
            subject_id=3,
            classification=Classification.internal,
            notify="emergency_page",
            context={"level": "II", "title": "Portal down"},
            is_drill=True,
            priority=100,
        )
        session.flush()
        entry_id = entry.id

    report = deliver_pending(engine, ctx, channels=channels, trail_entry_ids=[entry_id])

    assert report.delivered == 1
    [page] = receiver.at("/pager")
    assert page.payload["title"].startswith("[演练]")  # the sample policy's locale is zh-CN
    assert page.payload["type"] == "failure"  # pages look urgent where targets show types
    assert _rows(engine)[other].status == DeliveryStatus.pending  # not this step's


def test_status_problems_lists_the_last_error(engine, ctx, receiver, make_channels):
    from typer.testing import CliRunner

    from taskforce.cli import app

    channels = make_channels(("hook", "internal", receiver.url("/x"), ["executive"]))
    put(engine, ctx, key="k", audiences=["executive"])

    healthy = CliRunner().invoke(app, ["notify", "status", "--problems"])
    assert healthy.exit_code == 0, healthy.output
    # Nothing failing yet: said in words (an operator trial met an empty table).
    assert "no failing or dead-lettered notification" in healthy.output

    receiver.failing.add("/x")
    deliver_pending(engine, ctx, channels=channels)
    result = CliRunner().invoke(app, ["notify", "status", "--problems"])

    assert result.exit_code == 0, result.output
    assert "failing" in result.output and "error=500" in result.output
    assert "no failing or dead-lettered notification" not in result.output


def test_a_send_past_its_timeout_counts_as_failed_and_may_arrive_twice_with_one_key(
    engine, ctx, receiver, make_channels
):
    """The documented bound: Apprise stops waiting, the request may still land."""
    ctx = with_notifications(ctx, send_timeout_seconds=1)
    receiver.delays["/late"] = 2.0
    channels = make_channels(("late", "internal", receiver.url("/late"), ["executive"]))
    [message_id] = put(engine, ctx, key="k", audiences=["executive"])

    first = deliver_pending(engine, ctx, channels=channels)

    assert first.failing == 1
    assert "TIMEOUT" in _rows(engine)[message_id].last_error
    receiver.delays.clear()
    ctx.clock.advance(seconds=retry_delay(1, ctx.policy.notifications).total_seconds())
    assert deliver_pending(engine, ctx, channels=channels).delivered == 1
    arrivals = receiver.at("/late")
    assert len(arrivals) == 2  # at-least-once: the late one and the retry
    assert len({a.headers[DELIVERY_HEADER] for a in arrivals}) == 1  # a receiver can drop one


def test_after_a_crash_no_further_sends_start(engine, ctx, receiver, make_channels):
    ctx = with_notifications(ctx, max_parallel_sends=1)
    channels = make_channels(
        *[(f"c{i}", "internal", receiver.url(f"/c{i}"), ["executive"]) for i in range(4)]
    )
    put(engine, ctx, key="k", audiences=["executive"])

    def crash(result: TargetResult) -> None:
        raise Crash

    with pytest.raises(Crash):
        deliver_pending(engine, ctx, channels=channels, on_sent=crash)

    assert len(receiver.arrivals) <= 2  # the one that crashed, at most one already started


def test_an_audience_that_reaches_no_active_member_gets_a_reference_only(
    engine, ctx, receiver, make_channels
):
    """Nobody is known to be cleared behind a tag that reaches no active member (a typo in a
    channel's audiences, a member who left): its internal record goes out as a reference,
    whatever the channel's clearance. Its public one arrives in full."""
    from taskforce.org.models import Member

    ctx = with_locale(ctx, "en")
    channels = make_channels(
        ("typo", "secret", receiver.url("/typo"), ["sms-w33"]),
        ("left", "secret", receiver.url("/left"), ["member-W2"]),
    )
    with unit_of_work(engine) as s:  # W2 was cleared for internal, and has left
        s.execute(update(Member).where(Member.code == "W2").values(active=False))
    _internal_and_public(engine, ctx, internal_to=["sms-w33", "member-W2"], public_to="sms-w33")

    report = deliver_pending(engine, ctx, channels=channels)

    assert report.delivered == 3
    [left] = receiver.texts("/left")
    typo = receiver.texts("/typo")
    assert len(typo) == 2 and any("Open data day" in text for text in typo)
    for reference in [left, *[t for t in typo if "Open data day" not in t]]:
        assert "Shared catalogue gaps" not in reference and "TF-2026-00004" not in reference
        assert "read it in the system" in reference
