"""Verify the trail in id ranges, checked by parallel worker processes.

Each entry's own check needs only the entry and its *stored* `prev_hash`
(SHA-256 over prev_hash + the entry's bytes must equal its `hash`); the links
are a comparison of adjacent rows. So the id range is cut into chunks, each
worker opens its own read-only connection to the same database and checks
its chunk: the ids run on without gaps, each `prev_hash` equals the previous
row's `hash`, each hash is right. Only the first row of a chunk cannot be
linked there; `merge` links the chunks in id order and reports the first
break exactly as the sequential walk would (same entry id, same reason, same
count of entries verified before it).

The result is only used when the workers saw the same rows as the caller's
session (same count): a session with entries of its own not yet committed,
or appends committed in between, fall back to the sequential walk.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from taskforce.trail.models import TrailEntry
from taskforce.trail.service import (
    GENESIS,
    TrailBreak,
    Verification,
    _body,
    _iso_utc,
    check_head,
    select_columns,
)

_TABLE = TrailEntry.__tablename__
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkCheck:
    """What one worker found in its id range (lo, hi]."""

    rows: int  # rows in the range, counted in the same snapshot as they were read
    verified: int  # rows that passed before the chunk's first local break
    first_id: Any = None  # None: no row in the range
    first_prev_hash: Any = None
    last_id: Any = None  # of the last verified row
    last_hash: Any = None
    break_at: TrailBreak | None = None  # first break inside the chunk (not its first link)


UNREADABLE = object()  # a body that cannot be built: "content cannot be read"


def python_body(row: tuple) -> bytes | object:
    """The entry bytes of a full row, as the sequential walk builds them."""
    eid, at, actor, action, stype, sid, payload, cls, fallback = row[:9]
    try:
        return _body(eid, _iso_utc(at), actor, action, stype, sid, payload, cls, fallback)
    except (TypeError, ValueError):
        return UNREADABLE


def check_rows(batches, body_of=None) -> tuple[int, Any, Any, Any, Any, TrailBreak | None]:
    """Check consecutive (id, body, prev_hash, hash) rows of one chunk, in the sequential
    walk's order of checks: id, link, readable content, hash.

    A body of None is built by `body_of(id)` (rows SQLite could not build in SQL). The first
    row's id and link are left to `merge` (they need the previous chunk); its content is
    checked against its own stored prev_hash, which `merge` compares with the previous hash
    before this result is used.
    """
    sha = hashlib.sha256
    verified, first_id, first_prev, last_id, last_hash = 0, None, None, None, None
    found = None
    for rows in batches:
        for eid, body, prev_hash, digest in rows:
            if first_id is None:
                first_id, first_prev = eid, prev_hash
                if not isinstance(prev_hash, str):  # merge's link check fails on it first
                    found = TrailBreak(eid, "prev_hash does not match the previous entry")
                    break
            elif eid != last_id + 1:
                found = TrailBreak(last_id + 1, f"entry {last_id + 1} is missing (next is {eid})")
                break
            elif prev_hash != last_hash:
                found = TrailBreak(eid, "prev_hash does not match the previous entry")
                break
            if body is None:
                body = body_of(eid)
            if body is UNREADABLE:
                found = TrailBreak(eid, "content cannot be read")
                break
            if sha(prev_hash.encode() + b"\n" + body).hexdigest() != digest:
                found = TrailBreak(eid, "content does not match its hash")
                break
            verified, last_id, last_hash = verified + 1, eid, digest
        if found is not None:
            break
    return verified, first_id, first_prev, last_id, last_hash, found


def merge(
    chunks: list[ChunkCheck], start: tuple[int, str] | None = None
) -> tuple[int, str, TrailBreak | None]:
    """Link the chunks in id order: (entries verified, last hash, first break)."""
    start_id, prev = start or (0, GENESIS)
    expected, count = start_id + 1, start_id
    for chunk in chunks:
        if chunk.first_id is None:
            continue
        if chunk.first_id != expected:
            missing = TrailBreak(
                expected, f"entry {expected} is missing (next is {chunk.first_id})"
            )
            return count, prev, missing
        if chunk.first_prev_hash != prev:
            return (
                count,
                prev,
                TrailBreak(chunk.first_id, "prev_hash does not match the previous entry"),
            )
        if chunk.break_at is not None:
            return count + chunk.verified, prev, chunk.break_at
        prev, expected, count = chunk.last_hash, chunk.last_id + 1, count + chunk.verified
    return count, prev, None


# --- the workers ----------------------------------------------------------------------------


def _connect(dialect: str, address: str):
    """A read-only connection whose reads share one snapshot (count and rows agree)."""
    if dialect == "sqlite":
        import sqlite3

        conn = sqlite3.connect(f"file:{address}?mode=ro", uri=True, timeout=30)
        conn.isolation_level = None
        conn.execute("BEGIN")  # deferred: a read transaction, one snapshot under WAL
        return conn
    import psycopg

    conn = psycopg.connect(address)
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    return conn


def _range_sql(lo: int, hi: int | None) -> str:
    # Integers formatted in, so the statement needs no driver-specific paramstyle.
    return f"id > {int(lo)}" + ("" if hi is None else f" AND id <= {int(hi)}")


# SQLite builds the entry bytes itself (json_array escapes strings exactly as Python's json
# does with ensure_ascii=False; tests/trail/test_parallel.py checks it for any text): a third
# less work than fetching nine columns and building the bytes in Python. Only rows whose stored
# types are the ones `append` writes are built in SQL; any other row (tampered, or a time in
# another format) comes back NULL and is built in Python, exactly as the sequential walk does.
_SQLITE_TYPES_AS_WRITTEN = (
    "typeof(id) = 'integer' AND typeof(at) = 'text' AND length(at) = 26 "
    "AND substr(at, 11, 1) = ' ' AND substr(at, 20, 1) = '.' AND typeof(actor) = 'text' "
    "AND typeof(action) = 'text' AND typeof(subject_type) = 'text' "
    "AND typeof(subject_id) = 'text' AND typeof(payload) = 'text' "
    "AND typeof(classification) = 'text' AND typeof(calendar_fallback) = 'integer'"
)
# `_iso_utc`'s rewrite of the stored 'YYYY-MM-DD HH:MM:SS.ffffff' (isoformat drops a zero fraction).
_SQLITE_ISO = (
    "CASE WHEN substr(at, 20) = '.000000' THEN substr(at, 1, 10) || 'T' || substr(at, 12, 8) "
    "ELSE substr(at, 1, 10) || 'T' || substr(at, 12) END || '+00:00'"
)
SQLITE_BODY = (
    f"CASE WHEN {_SQLITE_TYPES_AS_WRITTEN} THEN CAST(json_array(id, {_SQLITE_ISO}, actor, "
    "action, subject_type, subject_id, payload, classification, "
    "json(CASE WHEN calendar_fallback THEN 'true' ELSE 'false' END)) AS BLOB) END"
)


def check_range(dialect: str, address: str, lo: int, hi: int | None, batch: int) -> ChunkCheck:
    """Worker: check the entries with lo < id <= hi (hi None: to the end)."""
    conn = _connect(dialect, address)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT count(*) FROM {_TABLE} WHERE {_range_sql(lo, hi)}")
        (rows,) = cur.fetchone()
        columns = select_columns(dialect)
        in_sql = dialect == "sqlite"
        selected = f"id, {SQLITE_BODY}, prev_hash, hash" if in_sql else columns

        def body_of(eid) -> bytes | object:
            one = conn.cursor()
            one.execute(f"SELECT {columns} FROM {_TABLE} WHERE id = ?", (eid,))
            return python_body(one.fetchone())

        def batches():
            after = lo
            while True:
                cur.execute(
                    f"SELECT {selected} FROM {_TABLE} WHERE {_range_sql(after, hi)} "
                    f"ORDER BY id LIMIT {int(batch)}"
                )
                fetched = cur.fetchall()
                if not fetched:
                    return
                after = fetched[-1][0]
                if in_sql:
                    yield fetched
                else:
                    yield [(r[0], python_body(r), r[9], r[10]) for r in fetched]

        verified, first_id, first_prev, last_id, last_hash, break_at = check_rows(
            batches(), body_of
        )
        return ChunkCheck(rows, verified, first_id, first_prev, last_id, last_hash, break_at)
    finally:
        conn.close()


# --- the caller's side ----------------------------------------------------------------------


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _target(session: Session) -> tuple[str, str] | None:
    """(dialect, address) a worker can open, or None (an in-memory database)."""
    url = session.get_bind().engine.url
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
            return None
        return "sqlite", os.path.abspath(url.database)
    if url.get_backend_name() == "postgresql":
        return "postgresql", url.set(drivername="postgresql").render_as_string(hide_password=False)
    return None


def _context():
    """fork where it is safe (one thread: nothing half-locked is copied), forkserver otherwise."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return multiprocessing.get_context("spawn")


def bounds(lowest: int, highest: int, chunks: int, after: int = 0) -> list[tuple[int, int | None]]:
    """(lo, hi] ranges covering id > after in order: the first from `after`, the last
    open-ended."""
    span = highest - lowest + 1
    cuts = [lowest - 1 + span * k // chunks for k in range(1, chunks)]
    cuts = sorted({c for c in cuts if c >= lowest})
    edges = [after, *cuts]
    return [(lo, hi) for lo, hi in zip(edges, [*cuts, None], strict=True)]


def verify_parallel(
    session: Session,
    workers: int,
    parallel_from: int,
    batch: int,
    start: tuple[int, str] | None = None,
) -> Verification | None:
    """The parallel verification, or None when the sequential walk should do it."""
    target = _target(session)
    if target is None or workers < 2:
        return None
    cursor = session.connection().connection.cursor()
    after = start[0] if start else 0
    cursor.execute(f"SELECT count(*), min(id), max(id) FROM {_TABLE} WHERE id > {int(after)}")
    total, lowest, highest = cursor.fetchone()
    cursor.close()
    if total == 0 or total < parallel_from:
        return None
    ranges = bounds(int(lowest), int(highest), workers, after)
    dialect, address = target
    try:
        with ProcessPoolExecutor(max_workers=len(ranges), mp_context=_context()) as pool:
            futures = [
                pool.submit(check_range, dialect, address, lo, hi, batch) for lo, hi in ranges
            ]
            chunks = [f.result() for f in futures]
    except Exception as exc:  # the workers are an optimisation, never the answer
        # A worker that cannot start or open the database (a fork server re-running a main
        # script that is not import-safe, a file only this process still has open, a URL the
        # driver alone cannot use): the walk in the session gives the answer instead.
        _log.warning("parallel trail verification failed (%s); walking it in one process", exc)
        return None
    if sum(c.rows for c in chunks) != total:
        return None  # the workers did not see what the session sees: walk it in the session
    count, last_hash, first_break = merge(chunks, start)
    result = (
        Verification(count, first_break) if first_break else check_head(session, count, last_hash)
    )
    return dataclasses.replace(result, processes=len(ranges))
