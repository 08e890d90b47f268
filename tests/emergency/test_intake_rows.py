"""`open_emergencies` writes with plain DBAPI statements (taskforce/emergency/intake_sql.py):
the stored bytes must be the ORM's. Each delivery is written both ways — the ORM path
(`open_emergency`, one transaction each) and the batch — and the rows are compared as the
database holds them (read without type processing): every column of the emergency and
its events, and the trail entries, on SQLite and PostgreSQL (the `engine` fixture).
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency import service
from taskforce.emergency.forms import EmergencyIntake
from taskforce.emergency.models import Level
from taskforce.policy.schema import Classification
from taskforce.text import as_one_line, has_visible

_runs = itertools.count()

# JSON values as a webhook sends them: text (any plane, no NUL), numbers, nesting.
_text = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
delivery = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["a", "b", "c", "键-ü"]),
        "level": st.sampled_from(list(Level)),
        "wg": st.sampled_from(["wg:data", None]),
        "drill": st.booleans(),
        "classification": st.sampled_from(list(Classification)),
        # (a title the intake takes: two characters or more once invisible ones are dropped)
        "title": _text.filter(lambda t: len(as_one_line(t)) >= 2 and has_visible(as_one_line(t))),
        "description": _text,
        "details": st.dictionaries(_text, _json, max_size=4),
    }
)


def _request(d: dict, source: str) -> service.IntakeRequest:
    intake = EmergencyIntake(
        level=d["level"],
        title=d["title"],
        description=d["description"],
        working_group=d["wg"] or ("wg:data" if d["level"] == Level.III else None),
        classification=d["classification"],
        details=d["details"],
    )
    return service.IntakeRequest(intake, source, d["key"], "gateway:test", d["drill"])


def _stored(engine, source: str) -> tuple:
    """The rows of `source` as stored, ids and public ids renamed in order of appearance."""
    with engine.connect() as conn:
        emergencies = [
            dict(r._mapping)
            for r in conn.execute(
                text("SELECT * FROM emergency WHERE source = :source ORDER BY id"),
                {"source": source},
            )
        ]
        names = {e["public_id"]: f"E{n}" for n, e in enumerate(emergencies)}
        ids = {e["id"]: names[e["public_id"]] for e in emergencies}
        events = [
            {**dict(r._mapping), "id": None, "emergency_id": ids[r.emergency_id]}
            for r in conn.execute(text("SELECT * FROM emergency_event ORDER BY id"))
            if r.emergency_id in ids
        ]
        trail = []
        for r in conn.execute(
            text(
                "SELECT at, actor, action, subject_type, subject_id, payload, classification, "
                "calendar_fallback FROM trail_entry ORDER BY id"
            )
        ):
            if r.subject_id in names:
                row = dict(r._mapping)
                row["subject_id"] = names[r.subject_id]
                row["payload"] = row["payload"].replace(f'"{source}"', '"SOURCE"')
                trail.append(row)
    for e in emergencies:
        e.update(id=None, public_id=names[e["public_id"]], source="SOURCE")
    return emergencies, events, trail


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(deliveries=st.lists(delivery, min_size=1, max_size=8))
def test_batch_rows_equal_the_orm_rows(engine, policy, clock, deliveries):
    ctx = Context(policy=policy, clock=clock)
    run = next(_runs)
    one, many = f"orm-{run}", f"raw-{run}"
    for d in deliveries:
        r = _request(d, one)
        with unit_of_work(engine) as s:
            r.open_alone(s, ctx)
    with unit_of_work(engine) as s:
        service.open_emergencies(s, ctx, [_request(d, many) for d in deliveries])

    assert _stored(engine, many) == _stored(engine, one)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    deliveries=st.lists(delivery, min_size=1, max_size=5),
    picks=st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=6),
)
def test_dispatch_marks_equal_the_orm_rows(engine, policy, clock, deliveries, picks):
    """`mark_dispatched_many` (plain DBAPI) against `mark_dispatched` per run (the ORM)."""
    ctx = Context(policy=policy, clock=clock)
    run = next(_runs)
    sides = {}
    for side in ("orm", "raw"):
        source = f"{side}-d{run}"
        with unit_of_work(engine) as s:
            opened = service.open_emergencies(s, ctx, [_request(d, source) for d in deliveries])
        ids = [o.emergency_id for o in opened]
        with unit_of_work(engine) as s:
            service.acknowledge(s, ctx, ids[0], actor="test")  # not pending any more
        sides[side] = (source, [ids[i % len(ids)] for i in picks])
    source, chosen = sides["orm"]
    for n, public_id in enumerate(chosen):
        with unit_of_work(engine) as s:
            service.mark_dispatched(s, ctx, public_id, f"run-{n}", actor="dispatcher")
    source_raw, chosen_raw = sides["raw"]
    with unit_of_work(engine) as s:
        service.mark_dispatched_many(
            s, ctx, [(p, f"run-{n}") for n, p in enumerate(chosen_raw)], actor="dispatcher"
        )

    assert _stored(engine, source_raw) == _stored(engine, source)


def test_new_public_ids_are_uuid7_text_in_time_order():
    import datetime as dt
    import uuid

    start = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
    instants = [start + dt.timedelta(milliseconds=n) for n in range(0, 5000, 3)]
    ids = [service.new_public_id(at) for at in instants for _ in range(3)]
    assert len(set(ids)) == len(ids)  # 74 random bits: ids of one millisecond differ too
    for n, public_id in enumerate(ids):
        parsed = uuid.UUID(public_id)
        assert str(parsed) == public_id
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        assert parsed.int >> 80 == (instants[n // 3] - epoch) // dt.timedelta(milliseconds=1)
    # Later milliseconds sort after earlier ones, as text (what the index orders by).
    firsts = ids[::3]
    assert firsts == sorted(firsts)
    # An instant in another zone is the same millisecond.
    shanghai = dt.timezone(dt.timedelta(hours=8))
    assert service.new_public_id(start.astimezone(shanghai))[:13] == ids[0][:13]


def test_a_public_id_refuses_a_time_it_cannot_hold():
    import datetime as dt

    import pytest

    with pytest.raises(ValueError, match="naive datetime"):
        service.new_public_id(dt.datetime(2026, 11, 27, 9, 0))
    with pytest.raises(ValueError, match="between 1970 and 10889"):
        service.new_public_id(dt.datetime(1969, 12, 31, 23, 59, tzinfo=dt.UTC))
    first = service.new_public_id(dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    assert first.startswith("00000000-0000-7")


@given(title=_text, description=_text)
@settings(max_examples=300, deadline=None)
def test_an_intake_taken_is_taken_again_as_stored(title, description):
    """What the intake stores is what it takes when read again (`open_emergency` validates
    its intake once more): cleaning came after the length bounds, so "0\x1c" was stored as
    "0", which the form then refused (found by test_batch_rows_equal_the_orm_rows)."""
    try:
        intake = EmergencyIntake(
            level="II", title=title, description=description, working_group="wg:data"
        )
    except ValueError:
        return  # refused: nothing stored
    assert EmergencyIntake.model_validate(intake.model_dump()) == intake
    assert len(intake.title) >= 2 and has_visible(intake.title)
