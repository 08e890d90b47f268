"""PostgreSQL: the gateway's batch as two pipelines (a lookup, then every write).

The writes of a batch are sent together and their errors come back at the end, so these
tests check what could go wrong there: a write refused half-way leaves nothing behind and
the group commit writes the batch again one by one; the trail stays one chain; the array
INSERTs store what the ORM stores, NULLs and all, and refuse what the ORM refuses.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import psycopg
import pytest
from sqlalchemy import func, select, text

from taskforce import bulk, trail
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency import service
from taskforce.emergency.forms import EmergencyIntake
from taskforce.emergency.intake_sql import IntakeWriter
from taskforce.emergency.models import Emergency, EmergencyEvent, Level
from taskforce.gateway.group_commit import GroupCommit
from taskforce.trail.models import TrailEntry

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _request(key: str, level: Level = Level.III) -> service.IntakeRequest:
    intake = EmergencyIntake(level=level, title=f"告警 {key}", working_group="wg:data")
    return service.IntakeRequest(intake, "monitor", key, "gateway:test", False)


def _count(engine, model, *where) -> int:
    with unit_of_work(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_a_write_refused_at_the_end_of_the_pipeline_leaves_nothing_and_is_written_one_by_one(
    engine, policy, clock, db_url, monkeypatch
):
    """Another process opens one of the batch's keys between its lookup and its writes (two
    gateway processes on one database): the batch's INSERT breaks the open-key index, which
    the pipeline reports at its next round trip (the trail head's read). The transaction
    rolls back whole, and the group commit writes each request in a transaction of its own:
    the contested key becomes a repeat."""
    ctx = Context(policy=policy, clock=clock)
    real_look_up = IntakeWriter.look_up
    competed = []

    def look_up_then_compete(self, keys, group_codes):
        found = real_look_up(self, keys, group_codes)
        if not competed:  # the first batch only; the one-by-one writes go through untouched
            competed.append(True)
            with unit_of_work(engine) as other:  # its own connection, committed at once
                service.open_emergency(
                    other,
                    ctx,
                    EmergencyIntake(level=Level.III, title="另一进程", working_group="wg:data"),
                    source="monitor",
                    dedup_key="contested",
                    actor="gateway:other",
                )
        return found

    # A wrapper around the real lookup, to place the other process's commit exactly there.
    monkeypatch.setattr(IntakeWriter, "look_up", look_up_then_compete)
    trail_before = _count(engine, TrailEntry)
    requests = [_request(k) for k in ("first", "contested", "second", "first")]

    async def deliver() -> list:
        commit = GroupCommit(engine)
        # Queued before the writer thread starts, so they share one batch.
        pending = [asyncio.ensure_future(commit.open(ctx, r)) for r in requests]
        return await asyncio.gather(*pending)

    results = asyncio.run(deliver())

    assert competed == [True]
    assert [(r.created, r.status) for r in results] == [
        (True, "pending_dispatch"),
        (False, "pending_dispatch"),  # a repeat of the other process's emergency
        (True, "pending_dispatch"),
        (False, "pending_dispatch"),
    ]
    assert _count(engine, Emergency, Emergency.source == "monitor") == 3
    with unit_of_work(engine) as s:
        contested = s.scalars(select(Emergency).where(Emergency.dedup_key == "contested")).one()
        assert contested.repeats == 1
        repeats = s.scalar(
            select(func.count())
            .select_from(EmergencyEvent)
            .where(EmergencyEvent.emergency_id == contested.id, EmergencyEvent.kind == "repeat")
        )
        assert repeats == 1
    # The other process's entry and one per request: the failed batch left none.
    assert _count(engine, TrailEntry) == trail_before + 1 + len(requests)
    with unit_of_work(engine) as s:
        assert trail.verify(s).first_break is None


def test_batches_keep_the_trail_one_chain_beside_other_writers(engine, policy, clock):
    """The batch chains its entries after the head it locks in its write pipeline; the
    ORM's appends of other transactions, before and after, continue the same chain."""
    ctx = Context(policy=policy, clock=clock)
    for n in range(3):
        with unit_of_work(engine) as s:
            service.open_emergencies(s, ctx, [_request(f"k{n}-{i}") for i in range(5)])
        with unit_of_work(engine) as s:  # another writer of the trail, between batches
            service.open_emergency(
                s,
                ctx,
                EmergencyIntake(level=Level.II, title="单条", working_group="wg:data"),
                source="other",
                dedup_key=f"alone-{n}",
                actor="seed",
            )
    with unit_of_work(engine) as s:
        verified = trail.verify(s)
        assert verified.first_break is None
        assert verified.entries == s.scalar(select(func.count()).select_from(TrailEntry))
        ids = s.scalars(select(TrailEntry.id).order_by(TrailEntry.id)).all()
        assert ids == list(range(1, len(ids) + 1))  # no gap in the trail's numbering


def test_repeats_draw_no_ids_from_the_emergency_sequence(engine, policy, clock):
    """Ids are drawn in the lookup, before the batch knows what it will insert: one per key
    not open. A monitor re-sending its open alerts must not use up the id column (an
    INTEGER), so a batch of repeats draws none and the next emergency takes the next id."""
    ctx = Context(policy=policy, clock=clock)
    with unit_of_work(engine) as s:
        service.open_emergencies(s, ctx, [_request("open")])
    for _ in range(3):
        with unit_of_work(engine) as s:
            results = service.open_emergencies(s, ctx, [_request("open"), _request("open")])
        assert [r.created for r in results] == [False, False]
    with unit_of_work(engine) as s:
        service.open_emergencies(s, ctx, [_request("later"), _request("open")])
        rows = dict(s.execute(select(Emergency.dedup_key, Emergency.id)).all())
    assert rows["later"] == rows["open"] + 1
    with unit_of_work(engine) as s:
        assert s.scalar(select(Emergency.repeats).where(Emergency.dedup_key == "open")) == 7


def test_array_inserts_store_nulls_and_refuse_an_over_long_value(engine):
    """`bulk.unnest_insert`: a column of NULLs only, JSON, times and flags as the ORM stores
    them; a string longer than its column is refused, not cut (a varchar(n)[] cast would
    cut it)."""
    at = dt.datetime(2026, 3, 9, 1, 0, tzinfo=dt.UTC)
    columns = ("emergency_id", "kind", "at", "actor", "detail")
    statement = bulk.unnest_insert(EmergencyEvent.__table__, columns)
    with unit_of_work(engine) as s:
        service.open_emergency(
            s,
            Context.default(),
            EmergencyIntake(level=Level.III, title="载体", working_group="wg:data"),
            source="monitor",
            dedup_key="carrier",
            actor="seed",
        )
    with unit_of_work(engine) as s:
        emergency_id = s.scalar(select(Emergency.id))
        cursor = s.connection().connection.driver_connection.cursor()
        detail = psycopg.types.json.Jsonb({"说明": "重复", "n": 2})
        bulk.insert_arrays(
            cursor,
            statement,
            [(emergency_id, "repeat", at, "gateway:a", detail)] * 2,
        )
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(EmergencyEvent.kind, EmergencyEvent.at, EmergencyEvent.detail).where(
                EmergencyEvent.actor == "gateway:a"
            )
        ).all()
    assert rows == [("repeat", at, {"说明": "重复", "n": 2})] * 2

    # A column that is NULL in every row (the emergency's working group, here).
    columns = ("public_id", "source", "dedup_key", "level", "title", "description")
    columns += ("classification", "status", "is_drill", "leading_group", "working_group")
    columns += ("opened_at", "deadlines", "escalation_step", "pages_at_step", "payload")
    columns += ("repeats",)
    row = (
        service.new_public_id(at),
        "monitor",
        "no-group",
        "II",
        "无工作组",
        "",
        "internal",
        "pending_dispatch",
        False,
        "leading",
        None,
        at,
        psycopg.types.json.Jsonb({}),
        1,
        0,
        psycopg.types.json.Jsonb({}),
        0,
    )
    with unit_of_work(engine) as s:
        cursor = s.connection().connection.driver_connection.cursor()
        bulk.insert_arrays(cursor, bulk.unnest_insert(Emergency.__table__, columns), [row])
    with unit_of_work(engine) as s:
        stored = s.scalars(select(Emergency).where(Emergency.dedup_key == "no-group")).one()
        assert (stored.working_group, stored.is_drill, stored.opened_at) == (None, False, at)

    too_long = (*row[:2], "x" * 201, *row[3:])
    with pytest.raises(psycopg.errors.StringDataRightTruncation), unit_of_work(engine) as s:
        cursor = s.connection().connection.driver_connection.cursor()
        bulk.insert_arrays(cursor, bulk.unnest_insert(Emergency.__table__, columns), [too_long])
    with unit_of_work(engine) as s:
        assert s.scalar(text("SELECT count(*) FROM emergency WHERE dedup_key LIKE 'xxx%'")) == 0
