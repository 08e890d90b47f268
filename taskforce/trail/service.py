"""Append to and verify the decision trail.

Each entry's hash is SHA-256 over the previous hash and the entry's canonical
bytes (id, time, actor, action, subject, payload, classification, calendar
fallback). Changing any byte of any entry, deleting one or reordering them
breaks the chain at that point, and `verify` names it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from taskforce import bulk
from taskforce.policy.schema import Classification
from taskforce.trail.models import TrailEntry, TrailHead

GENESIS = "0" * 64


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a trail payload")
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, uuid.UUID | set | frozenset):
        return str(value) if isinstance(value, uuid.UUID) else sorted(value)
    raise TypeError(f"cannot put {type(value).__name__} on the trail")


# One encoder for the process: json.dumps with options builds a new encoder per call,
# which was a third of the time of verifying a million entries (benchmarks/RESULTS.md).
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
)
# json's own string escaper for ensure_ascii=False: entry bytes are built with it directly.
_json_str = json.encoder.encode_basestring


def canonical_json(payload: Any) -> str:
    return _ENCODER.encode(payload)


# canonical_json with the C encoder built once (taskforce/bulk.py): for append_many's tens of
# thousands of small payloads. Equal to canonical_json for every value (tested).
_canonical_many = bulk.one_shot_encoder(
    _default, ensure_ascii=False, sort_keys=True, separators=(",", ":")
)


def _entry_bytes(
    entry_id: int,
    at: dt.datetime,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    payload: str,
    classification: str,
    calendar_fallback: bool,
) -> bytes:
    return _body(
        entry_id,
        at.astimezone(dt.UTC).isoformat(),
        actor,
        action,
        subject_type,
        subject_id,
        payload,
        classification,
        calendar_fallback,
    )


def _body(
    entry_id: int,
    at_iso: str,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    payload: str,
    classification: str,
    calendar_fallback: bool,
) -> bytes:
    # Byte for byte canonical_json([...]) of these nine fields (an int, seven strings and a
    # bool), written out because this runs once per entry when the whole trail is verified.
    return (
        f"[{int(entry_id)},{_json_str(at_iso)},{_json_str(actor)},"
        f"{_json_str(action)},{_json_str(subject_type)},{_json_str(subject_id)},"
        f"{_json_str(payload)},{_json_str(classification)},"
        f"{'true' if calendar_fallback else 'false'}]"
    ).encode()


def compute_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()


def append(
    session: Session,
    *,
    at: dt.datetime,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str | int,
    payload: Any = None,
    classification: Classification = Classification.internal,
    calendar_fallback: bool = False,
) -> TrailEntry:
    """Add one entry inside the caller's transaction (ARCHITECTURE.md rule 1)."""
    head = session.execute(
        select(TrailHead).where(TrailHead.id == 1).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        raise RuntimeError("the trail has no head row: run `taskforce migrate` first")
    at = at.astimezone(dt.UTC)
    text = canonical_json(payload if payload is not None else {})
    entry_id = head.last_id + 1
    body = _entry_bytes(
        entry_id,
        at,
        actor,
        action,
        subject_type,
        str(subject_id),
        text,
        Classification(classification).value,
        calendar_fallback,
    )
    digest = compute_hash(head.last_hash, body)
    entry = TrailEntry(
        id=entry_id,
        at=at,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        payload=text,
        classification=Classification(classification),
        calendar_fallback=calendar_fallback,
        prev_hash=head.last_hash,
        hash=digest,
    )
    session.add(entry)
    head.last_id, head.last_hash = entry_id, digest
    session.flush()
    return entry


def last_id(db: Session | Connection) -> int:
    """The id of the newest entry (0 for an empty trail): a position to deliver from."""
    return db.scalar(select(TrailHead.last_id).where(TrailHead.id == 1)) or 0


def append_many(session: Session, entries: list[dict[str, Any]]) -> list[int]:
    """Append many entries under one lock of the head, in one bulk INSERT (the sweep's hundreds
    of thousands of per-row appends were most of its time). Each dict takes `append`'s keyword
    arguments. Returns the new entries' ids, in order."""
    if not entries:
        return []
    # The head read and written by the driver: an ORM object and its flush, and even a Core
    # statement through the session, cost more than the rest of a small batch (the gateway
    # appends a dozen entries per transaction). What the session holds goes first, as its
    # own query would autoflush it (an `append` earlier in the transaction moved the head).
    session.flush()
    sqlite = bulk.is_sqlite(session)
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        return _append_rows(session, cursor, sqlite, entries)
    finally:
        cursor.close()


def _append_rows(
    session: Session, cursor, sqlite: bool, entries: list[dict[str, Any]]
) -> list[int]:
    cursor.execute(_HEAD_FOR_UPDATE[sqlite])
    head = cursor.fetchone()
    if head is None:
        raise RuntimeError("the trail has no head row: run `taskforce migrate` first")
    head_last_id, head_last_hash = head
    # Each distinct instant's hashed ISO text and stored value, once: a sweep's entries share
    # one `at`. (astimezone first, as `append` does: a naive time is taken as local time.)
    times: dict[dt.datetime, tuple[str, Any]] = {}
    first = head_last_id + 1
    prev, entry_id, rows = head_last_hash, head_last_id, []
    for e in entries:
        entry_id += 1
        at = e["at"]
        if (known := times.get(at)) is None:
            utc = at.astimezone(dt.UTC)
            known = times[at] = (utc.isoformat(), bulk.stored_time(utc, sqlite))
        at_iso, at_stored = known
        payload = e.get("payload")
        text = _canonical_many(payload if payload is not None else {})
        classification = e.get("classification", Classification.internal)
        classification = _LEVELS.get(classification) or Classification(classification).value
        fallback = bool(e.get("calendar_fallback", False))
        subject_id = str(e["subject_id"])
        actor, action, subject_type = e["actor"], e["action"], e["subject_type"]
        digest = compute_hash(
            prev,
            _body(
                entry_id,
                at_iso,
                actor,
                action,
                subject_type,
                subject_id,
                text,
                classification,
                fallback,
            ),
        )
        rows.append(
            (
                entry_id,
                at_stored,
                actor,
                action,
                subject_type,
                subject_id,
                text,
                classification,
                fallback,
                prev,
                digest,
            )
        )
        prev = digest
    # Through the driver in bulk, values as the column types store them (taskforce/bulk.py):
    # SQLAlchemy's per-row parameter processing was most of the cost of a sweep's entries.
    bulk.insert_many(session, TrailEntry.__tablename__, _INSERT_COLUMNS, rows)
    cursor.execute(_HEAD_UPDATE[sqlite], (entry_id, prev))
    loaded = session.identity_map.get(identity_key(TrailHead, 1))
    if loaded is not None:  # an ORM copy of the head in this session (from `append`) is stale
        session.expire(loaded)
    return list(range(first, entry_id + 1))


# Classification values by member or value (a StrEnum member hashes as its value): a dict
# lookup per entry rather than an Enum call; anything else still goes through Classification.
_LEVELS = {c.value: c.value for c in Classification}

_INSERT_COLUMNS = (
    "id",
    "at",
    "actor",
    "action",
    "subject_type",
    "subject_id",
    "payload",
    "classification",
    "calendar_fallback",
    "prev_hash",
    "hash",
)
# By "is it SQLite": SQLite has no row locks (its transactions take the write lock at BEGIN)
# and takes "?" placeholders, psycopg "%s".
_HEAD_FOR_UPDATE = {
    True: f"SELECT last_id, last_hash FROM {TrailHead.__tablename__} WHERE id = 1",
    False: f"SELECT last_id, last_hash FROM {TrailHead.__tablename__} WHERE id = 1 FOR UPDATE",
}
_HEAD_UPDATE = {
    True: f"UPDATE {TrailHead.__tablename__} SET last_id = ?, last_hash = ? WHERE id = 1",
    False: f"UPDATE {TrailHead.__tablename__} SET last_id = %s, last_hash = %s WHERE id = 1",
}


@dataclass(frozen=True)
class TrailBreak:
    entry_id: int
    reason: str


@dataclass(frozen=True)
class Verification:
    entries: int
    first_break: TrailBreak | None
    # How many processes read the chain (1: the sequential walk). Not part of the answer:
    # two verifications of the same chain are equal however they were run.
    processes: int = field(default=1, compare=False)

    @property
    def ok(self) -> bool:
        return self.first_break is None


def _iso_utc(value: dt.datetime | str) -> str:
    """`at.astimezone(UTC).isoformat()` of a stored time read without type processing.

    SQLite stores SQLAlchemy's text 'YYYY-MM-DD HH:MM:SS.ffffff' (naive UTC): that is
    rewritten as text, which is a third of the cost of parsing it; anything else is parsed.
    """
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " " and value[19] == ".":
            if value.endswith(".000000"):  # isoformat() drops a zero fraction
                return f"{value[:10]}T{value[11:19]}+00:00"
            return f"{value[:10]}T{value[11:]}+00:00"
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat()


_COLUMNS = (
    "id, at, actor, action, subject_type, subject_id, payload, classification, "
    "calendar_fallback, prev_hash, hash"
)
# PostgreSQL hands `at` over as the text SQLite stores (UTC 'YYYY-MM-DD HH:MM:SS.ffffff'), which
# `_iso_utc` rewrites without parsing: a million timezone-aware datetimes cost seconds.
_PG_COLUMNS = _COLUMNS.replace(
    "at,", "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'),", 1
)

# Verification splits into worker processes from this many entries on: below it, starting the
# processes costs more than they save (measured: benchmarks/RESULTS.md, trail).
PARALLEL_FROM_ENTRIES = 50_000


def select_columns(dialect: str) -> str:
    return _PG_COLUMNS if dialect == "postgresql" else _COLUMNS


def check_head(session: Session, count: int, last_hash: str) -> Verification:
    """The chain read so far must end where the head row says it does."""
    head = session.get(TrailHead, 1)
    if head is not None and (head.last_id != count or head.last_hash != last_hash):
        return Verification(
            count,
            TrailBreak(count + 1, f"the chain ends at {count} but the head says {head.last_id}"),
        )
    return Verification(count, None)


def verify(
    session: Session,
    batch: int = 50_000,
    *,
    workers: int | None = None,
    parallel_from: int = PARALLEL_FROM_ENTRIES,
    start: tuple[int, str] | None = None,
) -> Verification:
    """Walk the chain in id order; report the first broken link.

    From `parallel_from` entries on, id ranges are checked by `workers` processes (default:
    one per core) and linked at the end (`taskforce.trail.parallel`); the result is the same
    as the sequential walk's. `workers=1` forces the sequential walk. `start` (id, hash) of an
    entry already verified (a checkpoint) walks only the entries after it.
    """
    from taskforce.trail import parallel

    workers = parallel.default_workers() if workers is None else workers
    if workers > 1:
        result = parallel.verify_parallel(session, workers, parallel_from, batch, start)
        if result is not None:
            return result
    return verify_sequential(session, batch, start)


def verify_sequential(
    session: Session, batch: int = 50_000, start: tuple[int, str] | None = None
) -> Verification:
    """Walk the chain in id order in this process; report the first broken link.

    Reads with a plain DBAPI cursor of the session's connection: a million rows through
    SQLAlchemy's rows and type processors cost more than hashing them (benchmarks/RESULTS.md).
    """
    last_id, prev = start or (0, GENESIS)
    expected_id, count = last_id + 1, last_id
    columns = select_columns(session.get_bind().dialect.name)
    cursor = session.connection().connection.cursor()
    while True:
        # Integers formatted in, so the statement needs no driver-specific paramstyle.
        cursor.execute(
            f"SELECT {columns} FROM {TrailEntry.__tablename__} "
            f"WHERE id > {int(last_id)} ORDER BY id LIMIT {int(batch)}"
        )
        rows = cursor.fetchall()
        if not rows:
            break
        for eid, at, actor, action, stype, sid, payload, cls, fallback, prev_hash, digest in rows:
            if eid != expected_id:
                return Verification(
                    count,
                    TrailBreak(expected_id, f"entry {expected_id} is missing (next is {eid})"),
                )
            if prev_hash != prev:
                return Verification(
                    count, TrailBreak(eid, "prev_hash does not match the previous entry")
                )
            try:
                body = _body(eid, _iso_utc(at), actor, action, stype, sid, payload, cls, fallback)
            except (TypeError, ValueError):
                return Verification(count, TrailBreak(eid, "content cannot be read"))
            if compute_hash(prev, body) != digest:
                return Verification(count, TrailBreak(eid, "content does not match its hash"))
            prev, expected_id, count = digest, eid + 1, count + 1
        last_id = rows[-1][0]
    cursor.close()
    return check_head(session, count, prev)
