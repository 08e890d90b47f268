import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from taskforce import trail
from taskforce.trail import service as trail_service
from taskforce.trail.models import TrailEntry

T0 = dt.datetime(2026, 3, 9, 1, 0, tzinfo=dt.UTC)


def _append(session: Session, n: int, payload=None, first: int = 0) -> None:
    for i in range(first, first + n):
        trail.append(
            session,
            at=T0 + dt.timedelta(minutes=i),
            actor="E1",
            action="test",
            subject_type="issue",
            subject_id=i,
            payload=payload or {"i": i, "金额": "5000000.00"},
        )


def test_appends_verify(engine):
    with Session(engine) as s, s.begin():
        _append(s, 5)
    with Session(engine) as s:
        result = trail.verify(s)
    assert result.ok and result.entries == 5


def test_database_refuses_update_and_delete(engine):
    with Session(engine) as s, s.begin():
        _append(s, 2)
    for sql in (
        "UPDATE trail_entry SET actor = 'x' WHERE id = 1",
        "DELETE FROM trail_entry WHERE id = 2",
    ):
        with pytest.raises(DBAPIError, match="append-only"), Session(engine) as s, s.begin():
            s.execute(text(sql))
    with Session(engine) as s:
        assert trail.verify(s).ok


def _tamper(engine, sql: str) -> None:
    """Bypass the append-only guard the way an attacker with DBA rights would."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE trail_entry DISABLE TRIGGER USER"))
            conn.execute(text(sql))
            conn.execute(text("ALTER TABLE trail_entry ENABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER trail_entry_no_update"))
            conn.execute(text("DROP TRIGGER trail_entry_no_delete"))
            conn.execute(text(sql))


def test_changed_payload_detected_at_that_entry(engine):
    with Session(engine) as s, s.begin():
        _append(s, 4)
    _tamper(engine, "UPDATE trail_entry SET actor = 'forged' WHERE id = 3")
    with Session(engine) as s:
        result = trail.verify(s)
    assert not result.ok and result.first_break.entry_id == 3


def test_deleted_entry_detected(engine):
    with Session(engine) as s, s.begin():
        _append(s, 4)
    _tamper(engine, "DELETE FROM trail_entry WHERE id = 2")
    with Session(engine) as s:
        result = trail.verify(s)
    assert result.first_break.entry_id == 2 and "missing" in result.first_break.reason


def test_truncated_tail_detected_by_head(engine):
    with Session(engine) as s, s.begin():
        _append(s, 3)
    _tamper(engine, "DELETE FROM trail_entry WHERE id = 3")
    with Session(engine) as s:
        assert not trail.verify(s).ok


def test_canonical_json_is_stable():
    a = trail.canonical_json({"b": 1, "a": [1, 2], "c": "中文"})
    assert a == '{"a":[1,2],"b":1,"c":"中文"}'
    with pytest.raises(ValueError):
        trail.canonical_json({"t": dt.datetime(2026, 1, 1)})


# --- property: any sequence verifies; any single changed byte is detected ---

FIELDS = ["actor", "action", "subject_type", "subject_id", "payload", "prev_hash", "hash"]
payloads = st.dictionaries(
    st.text(min_size=1, max_size=8), st.one_of(st.integers(), st.text(max_size=20)), max_size=4
)


def _flip(value: str, pos: int) -> str:
    pos %= max(len(value), 1)
    ch = value[pos] if value else "a"
    repl = "b" if ch != "b" else "c"
    return value[:pos] + repl + value[pos + 1 :]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=st.lists(payloads, min_size=1, max_size=12), data=st.data())
def test_property_any_single_change_is_detected(sqlite_memory_engine, entries, data):
    engine = sqlite_memory_engine
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM trail_entry"))
        conn.execute(text("UPDATE trail_head SET last_id = 0, last_hash = :g"), {"g": "0" * 64})
    with Session(engine) as s, s.begin():
        for i, p in enumerate(entries):
            trail.append(
                s,
                at=T0 + dt.timedelta(seconds=i),
                actor="A",
                action="act",
                subject_type="issue",
                subject_id=i,
                payload=p,
            )
    with Session(engine) as s:
        assert trail.verify(s).entries == len(entries)
        victim = data.draw(st.integers(1, len(entries)))
        field = data.draw(st.sampled_from(FIELDS))
        row = s.get(TrailEntry, victim)
        original = getattr(row, field)
        pos = data.draw(st.integers(0, 200))
        changed = _flip(original, pos)
        if field == "payload":
            try:
                json.loads(changed)
            except ValueError:
                changed = original[:-1] + ',"x":1}' if original != "{}" else '{"x":1}'
    with engine.begin() as conn:
        conn.execute(
            text(f"UPDATE trail_entry SET {field} = :v WHERE id = :id"),
            {"v": changed, "id": victim},
        )
    with Session(engine) as s:
        result = trail.verify(s)
    assert not result.ok
    assert result.first_break.entry_id <= victim + 1


@pytest.fixture(scope="module")
def sqlite_memory_engine(tmp_path_factory):
    """A migrated SQLite file without the append-only triggers, for tampering at speed."""
    from taskforce.db import make_engine
    from taskforce.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('trail')}/t.db")
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER trail_entry_no_update"))
        conn.execute(text("DROP TRIGGER trail_entry_no_delete"))
    return engine


def test_concurrent_appends_never_fork(engine):
    """Writers in parallel threads: the head lock keeps one linear chain."""
    from concurrent.futures import ThreadPoolExecutor

    def worker(k: int) -> None:
        for j in range(10):
            with Session(engine) as s, s.begin():
                trail.append(s, at=T0, actor=f"w{k}", action="race", subject_type="t", subject_id=j)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(worker, range(4)))
    with Session(engine) as s:
        result = trail.verify(s)
        assert result.ok and result.entries == 40
        assert s.scalar(select(TrailEntry.id).order_by(TrailEntry.id.desc()).limit(1)) == 40


def test_single_and_many_appends_mixed_in_one_transaction_keep_one_chain(engine):
    """`append` moves the head through the ORM and `append_many` through the driver: in one
    transaction, each must start from where the other left off."""
    many = [
        {"at": T0, "actor": "E1", "action": "test", "subject_type": "task", "subject_id": n}
        for n in range(3)
    ]
    with Session(engine) as s, s.begin():
        before = trail_service.last_id(s)
        _append(s, 2)
        ids = trail.append_many(s, many)
        _append(s, 1)
        ids += trail.append_many(s, many[:1])
        after = trail_service.last_id(s)
    assert ids == [before + 3, before + 4, before + 5, before + 7]
    assert after == before + 7
    with Session(engine) as s:
        result = trail.verify(s)
    assert result.ok, result.first_break
