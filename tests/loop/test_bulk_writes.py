"""The sweep's bulk writes through the DBAPI store exactly what the SQLAlchemy paths stored.

Each case runs the new path and the old one (tests/loop/bulk_reference.py, the code before
commit f611513) from the same database state, each in a transaction that is rolled back, and
compares the rows they wrote: the stored values as the driver returns them (the exact text on
SQLite) and the values read back through the models' types. On PostgreSQL the id sequences
are set back before each run, so both runs get the same ids.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from taskforce import events, trail
from taskforce.context import Context
from taskforce.db import session_factory, unit_of_work
from taskforce.emergency.models import EarlyWarning
from taskforce.emergency.warnings import raise_warnings
from taskforce.loop.models import TaskNode
from taskforce.loop.sweep import _open_items
from taskforce.notify.models import OutboxMessage
from taskforce.notify.outbox import enqueue_many
from taskforce.policy.schema import Classification
from taskforce.trail.models import TrailEntry
from taskforce.trail.service import verify_sequential

from . import bulk_reference as old
from .helpers import Loop
from .test_sweep_incremental import _scene

SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ZONES = [dt.UTC, ZoneInfo("Asia/Shanghai"), dt.timezone(dt.timedelta(hours=-5, minutes=-30))]
instants = st.builds(
    lambda t, zone: t.replace(tzinfo=dt.UTC).astimezone(zone),
    st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2100, 1, 1)),
    st.sampled_from(ZONES),
)
# No NUL: PostgreSQL text and jsonb refuse it, on either path.
texts = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
# Trail payloads also take what canonical_json converts: times in any zone, days, decimals.
payload_values = st.recursive(
    json_values
    | instants
    | st.dates()
    | st.decimals(allow_nan=False, allow_infinity=False, places=2).map(Decimal),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=10,
)
classifications = st.sampled_from(list(Classification))
subject_ids = st.integers(1, 10**9) | st.text("ABC-0123456789", min_size=1, max_size=20)

trail_entries = st.fixed_dictionaries(
    {
        "at": instants,
        "actor": texts.map(lambda s: s[:100]),
        "action": st.sampled_from(["item.turned_red", "sweep.recoloured", "事项.升级"]),
        "subject_type": st.sampled_from(["task", "issue", "warning"]),
        "subject_id": subject_ids,
        "payload": st.dictionaries(texts, payload_values, max_size=4) | st.none(),
    },
    optional={"classification": classifications, "calendar_fallback": st.booleans()},
)


def _reset_sequences(session, tables: tuple[str, ...]) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite gives max(id) + 1, the same in both runs
    for table in tables:
        session.connection().exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        )


TABLES = ("trail_entry", "outbox_message", "warning")


def _marks(session) -> dict[str, int]:
    return {
        t: session.connection().exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {t}").scalar()
        for t in TABLES
    }


def _rows_written(engine, write, prepare=None):
    """Run `write(session)` in a transaction that is rolled back; return its result and the
    rows it added to the trail, the outbox and the warnings, raw and typed."""
    session = session_factory(engine)()
    session.begin()
    try:
        _reset_sequences(session, ("outbox_message", "warning"))
        if prepare is not None:
            prepare(session)
        before = _marks(session)
        result = write(session)
        session.flush()
        rows = {}
        for table, model in zip(TABLES, (TrailEntry, OutboxMessage, EarlyWarning), strict=True):
            rows[table, "raw"] = [
                tuple(r)
                for r in session.connection().exec_driver_sql(
                    f"SELECT * FROM {table} WHERE id > {int(before[table])} ORDER BY id"
                )
            ]
            rows[table, "typed"] = [
                tuple(r)
                for r in session.execute(
                    select(model.__table__)
                    .where(model.__table__.c.id > before[table])
                    .order_by(model.__table__.c.id)
                )
            ]
        verified = verify_sequential(session)
        return result, rows, verified
    finally:
        session.rollback()
        session.close()


@pytest.fixture
def ctx(policy, clock):
    return Context(policy=policy, clock=clock)


@SETTINGS
@given(entries=st.lists(trail_entries, min_size=1, max_size=6))
def test_append_many_stores_what_the_core_insert_stored(engine, entries):
    new_ids, new, new_check = _rows_written(engine, lambda s: trail.append_many(s, entries))
    old_ids, ref, _ = _rows_written(engine, lambda s: old.append_many(s, entries))
    assert new_ids == old_ids
    assert new == ref
    assert len(new["trail_entry", "raw"]) == len(entries)
    assert new_check.ok, new_check.first_break


contexts = st.dictionaries(texts, json_values, max_size=4) | st.fixed_dictionaries(
    {"working_group": st.sampled_from(["wg-1", "工作组-二", ""]), "title": texts}
)
outbox_requests = st.fixed_dictionaries(
    {
        "event_kind": st.sampled_from(["item_turned_red", "interview_requested", "escalation"]),
        "key": st.sampled_from(["k1", "k2", "trail:7:x", "事件:3"]),
        "subject_type": st.sampled_from(["task", "issue"]),
        "subject_id": subject_ids,
        "classification": classifications,
        "context": contexts,
        "at": instants,
    },
    optional={
        "audiences": st.lists(st.sampled_from(["executive", "director", "组-甲"]), max_size=3),
        "is_drill": st.booleans(),
        "priority": st.integers(0, 9),
        "trail_entry_id": st.integers(1, 10**6) | st.none(),
    },
)


@SETTINGS
@given(
    requests=st.lists(outbox_requests, min_size=1, max_size=6),
    stored=st.lists(st.sampled_from(["k1", "k2"]), max_size=2, unique=True),
)
def test_enqueue_many_stores_what_the_core_insert_stored(engine, policy, requests, stored):
    """Including keys already stored (not written again) and repeated keys (first wins)."""
    requests = [r | {"routing": policy.notifications} for r in requests]
    at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)

    def prepare(session):  # rows already in the outbox, the same before both runs
        old.enqueue_many(
            session,
            [
                {
                    "event_kind": "escalation",
                    "key": key,
                    "subject_type": "task",
                    "subject_id": 1,
                    "classification": Classification.internal,
                    "context": {},
                    "at": at,
                    "routing": policy.notifications,
                    "audiences": ["executive", "director"],
                }
                for key in stored
            ],
        )

    count, new, _ = _rows_written(engine, lambda s: enqueue_many(s, requests), prepare)
    ref_count, ref, _ = _rows_written(engine, lambda s: old.enqueue_many(s, requests), prepare)
    assert count == ref_count == len(new["outbox_message", "raw"])
    assert new == ref


records = st.fixed_dictionaries(
    {
        "at": instants,
        "actor": st.sampled_from(["dispatch-sweep", "系统"]),
        "action": st.sampled_from(["item.turned_red", "item.escalated"]),
        "subject_type": st.just("task"),
        "subject_id": subject_ids,
        "payload": st.dictionaries(texts, payload_values, max_size=3),
    },
    optional={
        "classification": classifications,
        "notify": st.sampled_from(["item_turned_red", "interview_requested", "escalation"]),
        "context": contexts,
        "is_drill": st.booleans(),
        "priority": st.integers(0, 3),
    },
)


@SETTINGS
@given(batch=st.lists(records, min_size=1, max_size=6))
def test_record_many_stores_what_it_stored_before(engine, policy, batch):
    """Trail entries and their outbox rows (no existence check for the new entries' keys)."""
    ids, new, check = _rows_written(engine, lambda s: events.record_many(s, policy, batch))
    ref_ids, ref, _ = _rows_written(engine, lambda s: old.record_many(s, policy, batch))
    assert ids == ref_ids
    assert new == ref
    assert check.ok


warning_requests = st.fixed_dictionaries(
    {
        "colour": st.sampled_from(["yellow", "orange", "red"]),
        "source": st.just("sweep"),
        "subject_type": st.just("task"),
        "subject_id": subject_ids,
        "title": texts.map(lambda s: s[:300]),
        "dedup_key": st.sampled_from(["task:1:red-escalation", "task:2:red-escalation", "甲"]),
    },
    optional={
        "classification": classifications,
        "actor": st.sampled_from(["dispatch-sweep", "系统"]),
        "is_drill": st.booleans(),
    },
)


@SETTINGS
@given(
    requests=st.lists(warning_requests, min_size=1, max_size=5),
    stored=st.lists(st.sampled_from(["task:1:red-escalation", "甲"]), max_size=1),
    now=instants,
)
def test_raise_warnings_stores_what_the_orm_insert_stored(engine, policy, requests, stored, now):
    """Warnings, their trail entries and outbox rows; a cause warned already is skipped."""
    from taskforce.clock import ManualClock

    ctx = Context(policy=policy, clock=ManualClock(now))
    earlier = [r | {"dedup_key": key} for r, key in zip(requests, stored, strict=False)]

    def prepare(session):
        old.raise_warnings(session, ctx, earlier)

    made, new, check = _rows_written(engine, lambda s: raise_warnings(s, ctx, requests), prepare)
    ref_made, ref, _ = _rows_written(
        engine, lambda s: [w.id for w in old.raise_warnings(s, ctx, requests)], prepare
    )
    assert made == ref_made
    assert new == ref
    assert len(new["warning", "raw"]) == len(made)
    assert check.ok


def _normalised(frame: pd.DataFrame) -> list[tuple]:
    """Rows as plain Python values, in id order (dtypes differ: the old frame's were object)."""

    def plain(value):
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return None
        if isinstance(value, pd.Timestamp):
            return value.to_pydatetime()
        return value.item() if hasattr(value, "item") else value

    frame = frame.sort_values("id")
    return [tuple(plain(v) for v in row) for row in frame.itertuples(index=False, name=None)]


@pytest.mark.slow
def test_open_items_reads_what_the_typed_select_read(engine, policy, clock):
    """The DBAPI read of the due items equals the SQLAlchemy read, column by column."""
    loop = Loop(engine, Context(policy=policy, clock=clock))
    _scene(loop, random.Random(5), issues=2, items=5)
    with unit_of_work(engine) as s:  # items with and without red-item steps and dates
        s.connection().exec_driver_sql(
            "UPDATE task_node SET next_action_on = NULL WHERE MOD(id, 3) = 0"
        )
    ctx = loop.ctx
    for due_by in (None, ctx.today(), ctx.today() + dt.timedelta(days=30)):
        with unit_of_work(engine) as s:
            new, ref = _open_items(s, due_by), old.open_items(s, due_by)
        assert list(new.columns) == list(ref.columns)
        assert len(new) == len(ref)
        assert _normalised(new) == _normalised(ref)


@settings(max_examples=400, deadline=None)
@given(value=payload_values | st.dictionaries(texts, payload_values))
def test_one_shot_canonical_json_equals_canonical_json(value):
    from taskforce.trail.service import _canonical_many, canonical_json

    assert _canonical_many(value) == canonical_json(value)


@settings(max_examples=400, deadline=None)
@given(
    value=st.recursive(
        json_values | st.floats(),  # NaN and infinities too: json.dumps writes them
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(texts | st.integers() | st.booleans() | st.none(), inner, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_stored_json_equals_json_dumps(value):
    import json

    from taskforce.bulk import stored_json

    assert stored_json(value) == json.dumps(value)


def test_the_fast_encoders_refuse_what_the_slow_ones_refuse():
    import json

    from taskforce.bulk import stored_json
    from taskforce.trail.service import _canonical_many, canonical_json

    for bad in ({"t": dt.datetime(2026, 1, 1)}, {"x": object()}, [1, {2, 3}]):
        for fast, slow in ((_canonical_many, canonical_json), (stored_json, json.dumps)):
            try:
                expected = slow(bad)
            except (TypeError, ValueError) as exc:
                with pytest.raises(type(exc)):
                    fast(bad)
            else:
                assert fast(bad) == expected


def _item_rows(session) -> dict[str, list[tuple]]:
    columns = "id, interview_requested_at, escalated_at, next_action_on"
    raw = [
        tuple(r)
        for r in session.connection().exec_driver_sql(
            f"SELECT {columns} FROM task_node ORDER BY id"
        )
    ]
    typed = [
        tuple(r)
        for r in session.execute(
            select(
                TaskNode.id,
                TaskNode.interview_requested_at,
                TaskNode.escalated_at,
                TaskNode.next_action_on,
            ).order_by(TaskNode.id)
        )
    ]
    return {"raw": raw, "typed": typed}


@pytest.mark.slow
def test_item_write_back_stores_what_the_single_update_stored(engine, policy, clock):
    """The executemany (SQLite) and COPY + UPDATE … FROM (PostgreSQL) write-back leaves every
    item row as a plain executemany of every column does, for varied days, steps and dirty
    rows."""
    from taskforce.clock import ManualClock
    from taskforce.loop.sweep import _write_items

    loop = Loop(engine, Context(policy=policy, clock=clock))
    _scene(loop, random.Random(8), issues=2, items=6)
    with unit_of_work(engine) as s:  # some stored dates unknown, some red-item steps taken
        s.connection().exec_driver_sql(
            "UPDATE task_node SET next_action_on = NULL WHERE MOD(id, 4) = 0"
        )
    for days in (0, 3, 17, 40, 75):
        ctx = Context(policy=policy, clock=ManualClock(clock.now() + dt.timedelta(days=days)))
        now = pd.Timestamp(ctx.now())
        outcomes = []
        by_lookups, by_plan = (functools.partial(_write_items, full=f) for f in (False, True))
        for write in (by_lookups, by_plan, old.write_items):
            session = session_factory(engine)()
            session.begin()
            try:
                items = _open_items(session)
                picks = random.Random(days)  # the same steps for both writers
                for col in ("interview_requested_at", "escalated_at"):
                    step = [picks.random() < 0.3 for _ in range(len(items))]
                    items.loc[step, col] = now
                dirty = np.array([picks.random() < 0.2 for _ in range(len(items))])
                write(session, ctx, items, dirty)
                outcomes.append(_item_rows(session))
            finally:
                session.rollback()
                session.close()
        assert outcomes[0] == outcomes[1] == outcomes[2]
