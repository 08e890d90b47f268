"""Parallel verification reports exactly what the sequential walk reports.

Every tampering an attacker with DBA rights could do — change an entry, change a prev_hash or a
hash, delete rows, swap two entries, cut the tail — at chunk boundaries and inside chunks, with
any number of chunks: `verify` (worker processes) == `verify_sequential` (the reference walk),
same entry id, same reason, same count.
"""

from __future__ import annotations

import datetime as dt
import itertools
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session

from taskforce import trail
from taskforce.db import make_engine
from taskforce.trail import parallel
from taskforce.trail.service import _body, _iso_utc, select_columns, verify, verify_sequential

T0 = dt.datetime(2026, 3, 9, 1, 0, tzinfo=dt.UTC)
KINDS = ["content", "prev_hash", "hash", "delete", "delete_run", "swap", "cut_tail", "garbage"]


def _entries(n: int) -> list[dict]:
    # Whole seconds and microseconds, non-ASCII and characters JSON must escape.
    return [
        {
            "at": T0 + dt.timedelta(seconds=i, microseconds=(i % 3) * 1234),
            "actor": "E1" if i % 2 else "主任",
            "action": "test",
            "subject_type": "issue",
            "subject_id": i,
            "payload": {"i": i, "金额": "5000000.00", "note": 'a "quoted"\n\\ line\t\x01'},
        }
        for i in range(n)
    ]


def _build(engine, n: int) -> None:
    with Session(engine) as s, s.begin():
        trail.append_many(s, _entries(n))


def _unguard(engine) -> None:
    """Bypass the append-only guard the way an attacker with DBA rights would."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE trail_entry DISABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS trail_entry_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS trail_entry_no_delete"))


def _tamper(engine, kind: str, at: int, n: int) -> None:
    sql = {
        "content": [f"UPDATE trail_entry SET actor = 'forged' WHERE id = {at}"],
        "prev_hash": [f"UPDATE trail_entry SET prev_hash = '{'f' * 64}' WHERE id = {at}"],
        "hash": [f"UPDATE trail_entry SET hash = '{'e' * 60}{at:04d}' WHERE id = {at}"],
        "delete": [f"DELETE FROM trail_entry WHERE id = {at}"],
        "delete_run": [f"DELETE FROM trail_entry WHERE id >= {at} AND id < {at + 5}"],
        "swap": [  # two adjacent entries trade places
            f"UPDATE trail_entry SET id = -1 WHERE id = {at}",
            f"UPDATE trail_entry SET id = {at} WHERE id = {at % n + 1}",
            f"UPDATE trail_entry SET id = {at % n + 1} WHERE id = -1",
        ],
        "cut_tail": [f"DELETE FROM trail_entry WHERE id >= {at}"],
        "garbage": [f"UPDATE trail_entry SET payload = X'00ff' WHERE id = {at}"],
    }[kind]
    if kind == "garbage" and engine.dialect.name == "postgresql":
        sql = [f"UPDATE trail_entry SET subject_id = 'x' || subject_id WHERE id = {at}"]
    with engine.begin() as conn:
        for statement in sql:
            conn.execute(text(statement))


def _both(engine, workers: int) -> tuple[trail.service.Verification, trail.service.Verification]:
    with Session(engine) as s:
        sequential = verify_sequential(s, batch=7)
    with Session(engine) as s:
        chunked = parallel.verify_parallel(s, workers, parallel_from=0, batch=7)
    if chunked is None:  # only an empty trail is left to the sequential walk
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM trail_entry WHERE id > 0")) == 0
        with Session(engine) as s:
            chunked = verify(s, batch=7, workers=workers, parallel_from=0)
    return sequential, chunked


def _boundaries(n: int, workers: int) -> list[int]:
    """Ids on either side of every chunk boundary, and the ends."""
    ids = {1, 2, n - 1, n}
    for lo, _hi in parallel.bounds(1, n, workers)[1:]:
        ids |= {lo, lo + 1}
    return sorted(i for i in ids if 1 <= i <= n)


N = 30


@pytest.mark.parametrize("kind", KINDS)
def test_same_break_as_sequential_at_every_boundary(engine, kind):
    """Both backends: every kind of tampering on both sides of every chunk boundary."""
    _build(engine, N)
    _unguard(engine)
    intact = _both(engine, 3)
    assert intact[0] == intact[1] and intact[0].ok and intact[0].entries == N
    template = engine.url
    for at in _boundaries(N, 3):
        # Each position on a fresh chain: undo by rebuilding from scratch.
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM trail_entry"))
            conn.execute(text("UPDATE trail_head SET last_id = 0, last_hash = :g"), {"g": "0" * 64})
        _build(engine, N)
        _tamper(engine, kind, at, N)
        sequential, chunked = _both(engine, 3)
        assert not sequential.ok, (kind, at)
        assert chunked == sequential, (kind, at, template)


def test_own_uncommitted_entries_are_seen(engine):
    """A session that appended without committing: the workers cannot see those entries, so
    the walk happens in the session and still counts them."""
    _build(engine, N)
    with Session(engine) as s, s.begin():
        trail.append_many(s, _entries(4))
        assert parallel.verify_parallel(s, 3, parallel_from=0, batch=7) is None
        result = verify(s, workers=3, parallel_from=0)
        assert result == verify_sequential(s)
        assert result.ok and result.entries == N + 4


def test_small_chain_walks_in_process(engine):
    _build(engine, 5)
    with Session(engine) as s:
        assert verify(s) == verify_sequential(s) == trail.service.Verification(5, None)


def test_empty_trail(engine):
    with Session(engine) as s:
        assert verify(s, workers=2, parallel_from=0) == verify_sequential(s)


# --- hypothesis over break position, chunk count and kind (SQLite files, fast to copy) ---


@pytest.fixture(scope="module")
def sqlite_chain(tmp_path_factory):
    from taskforce.migrate import upgrade

    path = tmp_path_factory.mktemp("chain") / "chain.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    _build(engine, 60)
    _unguard(engine)
    engine.dispose()
    return path


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(KINDS),
    at=st.integers(1, 60),
    workers=st.integers(2, 7),
    second=st.one_of(st.none(), st.tuples(st.sampled_from(KINDS), st.integers(1, 60))),
)
def test_property_same_result_as_sequential(
    sqlite_chain, tmp_path_factory, kind, at, workers, second
):
    path = tmp_path_factory.mktemp("case") / "t.db"
    shutil.copy(sqlite_chain, path)
    engine = make_engine(f"sqlite:///{path}")
    try:
        _tamper(engine, kind, at, 60)
        if second is not None:  # a second break: the first one in id order must win
            _tamper(engine, second[0], second[1], 60)
        sequential, chunked = _both(engine, workers)
        assert chunked == sequential
    finally:
        engine.dispose()


@given(lowest=st.integers(1, 1000), size=st.integers(0, 1000), chunks=st.integers(1, 16))
def test_bounds_cover_every_id_once_in_order(lowest, size, chunks):
    highest = lowest + size
    ranges = parallel.bounds(lowest, highest, chunks)
    assert ranges[0][0] == 0 and ranges[-1][1] is None and len(ranges) <= chunks
    for (_, hi), (lo, _) in itertools.pairwise(ranges):
        assert hi == lo
    for lo, hi in ranges[:-1]:
        assert lo < hi


@given(
    at=st.datetimes(
        min_value=dt.datetime(1000, 1, 1),
        max_value=dt.datetime(9999, 12, 31),
        timezones=st.just(dt.UTC),
    )
)
def test_postgres_time_text_is_the_same_isoformat(at):
    """What `to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')` gives, rewritten."""
    stored = at.strftime("%Y-%m-%d %H:%M:%S.%f")
    assert _iso_utc(stored) == at.isoformat()


def test_postgres_reads_the_times_it_stored(engine):
    """Times with and without microseconds round-trip through the text read on both backends."""
    _build(engine, 12)
    with Session(engine) as s:
        assert verify_sequential(s).ok
        assert verify(s, workers=2, parallel_from=0) == verify_sequential(s)
    assert _body  # the same body builder serves both walks


def test_reasons_at_a_boundary(engine):
    """The reports themselves, at the first id of the second chunk."""
    _build(engine, N)
    _unguard(engine)
    boundary = parallel.bounds(1, N, 3)[1][0] + 1
    _tamper(engine, "delete", boundary, N)
    sequential, chunked = _both(engine, 3)
    assert chunked.first_break == trail.TrailBreak(
        boundary, f"entry {boundary} is missing (next is {boundary + 1})"
    )
    assert chunked.entries == boundary - 1 == sequential.entries


# --- SQLite builds the entry bytes in SQL: equal to Python's for any stored text ---

texts = st.text(max_size=40)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    at=st.one_of(
        st.datetimes(min_value=dt.datetime(1000, 1, 1)).map(
            lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f")
        ),
        st.datetimes(min_value=dt.datetime(1000, 1, 1)).map(
            lambda d: d.replace(microsecond=0).strftime("%Y-%m-%d %H:%M:%S.%f")
        ),
        texts,
        st.integers(-(2**63), 2**63 - 1),
    ),
    fields=st.tuples(texts, texts, texts, texts, texts, texts),
    fallback=st.one_of(st.integers(-2, 2), st.booleans(), texts),
    eid=st.integers(1, 2**62),
)
def test_sqlite_body_in_sql_equals_python_body(sqlite_chain, at, fields, fallback, eid):
    import sqlite3

    actor, action, stype, sid, payload, cls = fields
    conn = sqlite3.connect(":memory:")
    try:
        # The same declared types (and so the same type affinities) as the migrated table.
        conn.execute(
            "CREATE TABLE trail_entry (id BIGINT PRIMARY KEY, at DATETIME, actor VARCHAR(100), "
            "action VARCHAR(64), subject_type VARCHAR(32), subject_id VARCHAR(64), payload TEXT, "
            "classification VARCHAR(32), calendar_fallback BOOLEAN, prev_hash VARCHAR(64), "
            "hash VARCHAR(64))"
        )
        conn.execute(
            "INSERT INTO trail_entry VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'p', 'h')",
            (eid, at, actor, action, stype, sid, payload, cls, fallback),
        )
        row = conn.execute(f"SELECT {select_columns('sqlite')} FROM trail_entry").fetchone()
        (in_sql,) = conn.execute(f"SELECT {parallel.SQLITE_BODY} FROM trail_entry").fetchone()
    finally:
        conn.close()
    at_read, fallback_read = row[1], row[8]
    as_written = (
        isinstance(at_read, str)
        and len(at_read) == 26
        and at_read[10] == " "
        and at_read[19] == "."
        and all(isinstance(v, str) for v in row[2:8])
        and type(fallback_read) is int
    )
    # Built in SQL exactly when the row is typed as `append` writes it, and then equal.
    assert (in_sql is not None) == as_written
    if as_written:
        assert in_sql == parallel.python_body(row)


# --- a walk from a verified point (what checkpoints use) equals the full walk's tail ---


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(KINDS),
    at=st.integers(1, 60),
    start_id=st.integers(0, 59),
    workers=st.integers(2, 5),
)
def test_walk_from_a_start_same_in_parallel(
    sqlite_chain, tmp_path_factory, kind, at, start_id, workers
):
    path = tmp_path_factory.mktemp("start") / "t.db"
    shutil.copy(sqlite_chain, path)
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            start_hash = conn.scalar(text(f"SELECT hash FROM trail_entry WHERE id = {start_id}"))
        start = (start_id, start_hash) if start_id else None
        _tamper(engine, kind, at, 60)
        with Session(engine) as s:
            sequential = verify_sequential(s, batch=7, start=start)
        with Session(engine) as s:
            chunked = parallel.verify_parallel(s, workers, 0, 7, start)
        if chunked is None:  # nothing after the start is left
            with engine.connect() as conn:
                left = conn.scalar(text(f"SELECT count(*) FROM trail_entry WHERE id > {start_id}"))
            assert left == 0
        else:
            assert chunked == sequential
    finally:
        engine.dispose()


def test_workers_start_safely_beside_other_threads(sqlite_chain, tmp_path):
    """With another thread running (a Prefect flow's, say), forking could copy a half-held
    lock: the workers start from a fork server instead, and the answer is the same."""
    import threading

    path = tmp_path / "t.db"
    shutil.copy(sqlite_chain, path)
    engine = make_engine(f"sqlite:///{path}")
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert parallel._context().get_start_method() != "fork"
        with Session(engine) as s:
            chunked = parallel.verify_parallel(s, 3, 0, 7)
            assert chunked == verify_sequential(s) and chunked.processes == 3
    finally:
        release.set()
        other.join()
        engine.dispose()


def test_workers_that_cannot_open_the_database_leave_it_to_the_walk(sqlite_chain, tmp_path):
    """The file is gone for everyone but this process's open connection: the workers fail to
    open it, and the walk in the session still gives the answer."""
    import os

    path = tmp_path / "t.db"
    shutil.copy(sqlite_chain, path)
    engine = make_engine(f"sqlite:///{path}")
    try:
        with Session(engine) as s:
            s.connection()  # this session's connection stays open on the file
            expected = verify_sequential(s)
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(f"{path}{suffix}"):
                    os.unlink(f"{path}{suffix}")
            assert parallel.verify_parallel(s, 2, 0, 7) is None
            assert verify(s, workers=2, parallel_from=0) == expected and expected.ok
    finally:
        engine.dispose()
