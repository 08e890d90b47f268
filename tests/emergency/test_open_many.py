"""The gateway's set-based writes give what the one-at-a-time service calls give.

`open_emergencies` (the group commit's batch) against `open_emergency` called per request,
and `mark_dispatched_many` against `mark_dispatched` per run, for any sequence: new keys,
repeats within the batch and of emergencies already open, resolved keys reopened, unknown
working groups, a level-III intake without one, over-long keys.
"""

from __future__ import annotations

import itertools
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from taskforce import bulk
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency import service
from taskforce.emergency.forms import EmergencyIntake
from taskforce.emergency.models import Emergency, EmergencyEvent, EmergencyStatus, Level
from taskforce.errors import DomainError
from taskforce.notify.models import OutboxMessage
from taskforce.trail.models import TrailEntry

_runs = itertools.count()

delivery = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["a", "b", "c", "open-before", "resolved-before", "x" * 201]),
        "level": st.sampled_from(list(Level)),
        "wg": st.sampled_from(["wg:data", None, "wg:nope"]),
        "drill": st.booleans(),
    }
)


def _request(d: dict, source: str) -> service.IntakeRequest:
    intake = EmergencyIntake(level=d["level"], title=f"告警 {d['key'][:20]}", working_group=d["wg"])
    return service.IntakeRequest(intake, source, d["key"], "gateway:test", d["drill"])


def _seed(engine, ctx, source: str) -> None:
    """One open emergency and one resolved one, before the deliveries."""
    for key in ("open-before", "resolved-before"):
        with unit_of_work(engine) as s:
            opened = service.open_emergency(
                s,
                ctx,
                EmergencyIntake(level=Level.II, title="之前的告警", working_group="wg:data"),
                source=source,
                dedup_key=key,
                actor="seed",
            )
        if key == "resolved-before":
            with unit_of_work(engine) as s:
                service.resolve(s, ctx, opened.emergency_id, actor="seed")


def _answers(results) -> list:
    return [
        ("error", str(r), r.field)
        if isinstance(r, DomainError)
        else ("ok", r.created, r.status, r.level, r.is_drill)
        for r in results
    ]


def _state(engine, source: str, ids: dict[str, str]) -> tuple:
    """Everything written for `source`, with public ids renamed in order of appearance."""
    with unit_of_work(engine) as s:
        rows = s.scalars(
            select(Emergency).where(Emergency.source == source).order_by(Emergency.id)
        ).all()
        for e in rows:
            ids.setdefault(e.public_id, f"E{len(ids)}")
        emergencies = [
            (
                ids[e.public_id],
                e.dedup_key,
                e.level,
                e.title,
                e.status,
                e.is_drill,
                e.leading_group,
                e.working_group,
                e.deadlines,
                e.escalation_step,
                e.repeats,
                e.flow_run_id and e.flow_run_id.replace(e.public_id, ids[e.public_id]),
            )
            for e in rows
        ]
        by_id = {e.id: ids[e.public_id] for e in rows}
        events = [
            (by_id[ev.emergency_id], ev.kind, ev.actor)
            for ev in s.scalars(
                select(EmergencyEvent)
                .where(EmergencyEvent.emergency_id.in_(by_id))
                .order_by(EmergencyEvent.id)
            )
        ]
        entries = [
            (t.action, ids[t.subject_id], t.actor, _renamed(t.payload, ids, source))
            for t in s.scalars(
                select(TrailEntry)
                .where(TrailEntry.subject_id.in_(list(ids)))
                .order_by(TrailEntry.id)
            )
        ]
        # A tracked level's notice (keys aside: they name trail ids).
        notices = [
            (m.event_kind, ids[m.subject_id], m.audience, m.classification, m.is_drill, m.context)
            for m in s.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.subject_id.in_(list(ids)))
                .where(OutboxMessage.event_kind == "emergency_tracked")
                .order_by(OutboxMessage.id)
            )
        ]
    return emergencies, events, entries, notices


def _never_more_severe(deliveries: list[dict]) -> list[dict]:
    """Each key's deliveries clamped to the mildest level seen for it so far (the seeded
    open emergency is level II)."""
    mildest = {"open-before": Level.II}
    out = []
    for d in deliveries:
        level = d["level"]
        if d["key"] in mildest and level.severity > mildest[d["key"]].severity:
            level = mildest[d["key"]]
        mildest[d["key"]] = min(level, mildest.get(d["key"], level), key=lambda v: v.severity)
        out.append({**d, "level": level})
    return out


def _renamed(payload: str, ids: dict[str, str], source: str) -> str:
    payload = payload.replace(f'"{source}"', '"SOURCE"')
    for public_id, name in ids.items():
        payload = payload.replace(public_id, name)
    return payload


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(deliveries=st.lists(delivery, min_size=1, max_size=12))
@pytest.mark.parametrize("raises", [True, False], ids=["levels-mixed", "no-raise"])
def test_open_emergencies_equals_open_emergency_one_by_one(
    engine, policy, clock, deliveries, raises
):
    """`levels-mixed`: any levels, so a batch may raise a level (and then goes one by one);
    `no-raise`: each key's levels never grow more severe, so the set-based path runs."""
    if not raises:
        deliveries = _never_more_severe(deliveries)
        requests = [_request(d, "x") for d in deliveries]
        open_rows = {("x", "open-before"): type("Row", (), {"level": Level.II})}
        assert not service._raises_a_level(
            requests, [r.intake for r in requests], range(len(requests)), open_rows
        )
    ctx = Context(policy=policy, clock=clock)
    run = next(_runs)
    one, many = f"one-{run}", f"many-{run}"
    _seed(engine, ctx, one)
    _seed(engine, ctx, many)

    expected = []
    for d in deliveries:
        try:
            with unit_of_work(engine) as s:
                r = _request(d, one)
                expected.append(r.open_alone(s, ctx))
        except DomainError as exc:
            expected.append(exc)
    with unit_of_work(engine) as s:
        got = service.open_emergencies(s, ctx, [_request(d, many) for d in deliveries])

    assert _answers(got) == _answers(expected)
    assert _state(engine, many, {}) == _state(engine, one, {})


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(picks=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=8))
def test_mark_dispatched_many_equals_mark_dispatched_one_by_one(engine, policy, clock, picks):
    """Pick emergencies (some twice, one acknowledged already) and mark their runs."""
    ctx = Context(policy=policy, clock=clock)
    run = next(_runs)
    sides = {}
    for side in ("one", "many"):
        source = f"{side}-d{run}"
        with unit_of_work(engine) as s:
            opened = service.open_emergencies(
                s,
                ctx,
                [
                    _request({"key": k, "level": Level.II, "wg": "wg:data", "drill": False}, source)
                    for k in ("p", "q", "r", "s")
                ],
            )
        ids = [o.emergency_id for o in opened]
        with unit_of_work(engine) as s:
            service.acknowledge(s, ctx, ids[3], actor="test")
        sides[side] = (source, ids)

    source, ids = sides["one"]
    expected = []
    for i in picks:
        with unit_of_work(engine) as s:
            expected.append(
                service.mark_dispatched(s, ctx, ids[i], f"run-{ids[i]}", actor="dispatcher")
            )
    source_many, ids_many = sides["many"]
    with unit_of_work(engine) as s:
        got = service.mark_dispatched_many(
            s, ctx, [(ids_many[i], f"run-{ids_many[i]}") for i in picks], actor="dispatcher"
        )

    assert got == expected
    one_state = _state(engine, source, {})
    many_state = _state(engine, source_many, {})
    assert many_state == one_state
    statuses = {e[4] for e in many_state[0]}
    assert statuses <= {
        EmergencyStatus.pending_dispatch,
        EmergencyStatus.dispatched,
        EmergencyStatus.acknowledged,
    }


def test_a_batch_larger_than_one_statement_writes_what_one_by_one_writes(
    engine, policy, clock, monkeypatch
):
    """With statements made small, the batch's multi-row INSERTs and its repeats UPDATE
    span several statements each (on SQLite, where they are multi-row statements): the
    rows, ids and counts are still those of one-by-one calls."""
    # 2 emergencies, 3 trail entries, 8 events and 13 repeat counts per statement
    monkeypatch.setattr(bulk, "SQLITE_MAX_PARAMETERS", 40)
    ctx = Context(policy=policy, clock=clock)
    run = next(_runs)
    one, many = f"one-big{run}", f"many-big{run}"
    _seed(engine, ctx, one)
    _seed(engine, ctx, many)
    deliveries = [
        {"key": key, "level": Level.II, "wg": "wg:data", "drill": False}
        for key in [f"k{n}" for n in range(23)] * 2 + ["open-before"] * 3
    ]

    expected = []
    for d in deliveries:
        with unit_of_work(engine) as s:
            expected.append(_request(d, one).open_alone(s, ctx))
    with unit_of_work(engine) as s:
        got = service.open_emergencies(s, ctx, [_request(d, many) for d in deliveries])

    assert _answers(got) == _answers(expected)
    assert _state(engine, many, {}) == _state(engine, one, {})
    with unit_of_work(engine) as s:
        repeats = dict(
            s.execute(
                select(Emergency.dedup_key, Emergency.repeats).where(Emergency.source == many)
            ).all()
        )
    assert repeats == {f"k{n}": 1 for n in range(23)} | {"open-before": 3, "resolved-before": 0}
    # Every delivery's answer names a stored emergency of its key.
    with unit_of_work(engine) as s:
        stored = dict(
            s.execute(
                select(Emergency.public_id, Emergency.dedup_key).where(Emergency.source == many)
            ).all()
        )
    assert [stored[r.emergency_id] for r in got] == [d["key"] for d in deliveries]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # a limit of SQLite connections
def test_a_connection_with_a_low_parameter_limit_gets_smaller_statements(engine, policy, clock):
    """An SQLite built with a lower limit (999 before 3.32, or less): the batch's statements
    follow the connection's own limit instead of failing with "too many SQL variables"."""
    ctx = Context(policy=policy, clock=clock)
    source = f"low-limit-{next(_runs)}"
    keys = [f"k{n}" for n in range(30)] * 2
    deliveries = [{"key": k, "level": Level.II, "wg": "wg:data", "drill": False} for k in keys]
    with unit_of_work(engine) as s:
        raw = s.connection().connection.driver_connection
        before = raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 40)
        try:
            got = service.open_emergencies(s, ctx, [_request(d, source) for d in deliveries])
        finally:
            raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, before)
    assert [r.created for r in got] == [True] * 30 + [False] * 30
    with unit_of_work(engine) as s:
        repeats = s.scalars(select(Emergency.repeats).where(Emergency.source == source)).all()
    assert sorted(repeats) == [1] * 30
