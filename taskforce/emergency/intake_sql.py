"""The gateway's batch writes as plain DBAPI statements (`open_emergencies`' storage).

Why: a batch of a dozen webhooks is a few small statements, and SQLAlchemy's execution
path (compile cache lookup, parameter processing, result set-up) cost more than SQLite
took to run them (benchmarks/figures/gateway.py). Here each statement is a string (built
once per dialect, or on SQLite per call for the multi-row ones, whose text depends on the
row count: sqlite3's statement cache saves preparing them again) run on the session's own
DBAPI connection, inside its transaction. On SQLite a batch is about nine statements
whatever its size; on PostgreSQL the text of the lookup and the inserts does not depend on
the batch's size, so psycopg prepares them.

Values are converted with the bind processors of the columns' own SQLAlchemy types (the
functions SQLAlchemy itself applies: UTCDateTime, the enums, JSON/JSONB, booleans), so
the stored bytes are the ORM's (tests/emergency/test_open_many.py compares the rows).
Rows read back come without type processing and are converted here the way the types
would (`OpenRow`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Table
from sqlalchemy.orm import Session

from taskforce import bulk
from taskforce.emergency.models import (
    OPEN_DEDUP_WHERE,
    Emergency,
    EmergencyEvent,
    EmergencyStatus,
    Level,
)
from taskforce.org.models import Group
from taskforce.policy.schema import Classification

# Columns `open_emergencies` gives a new emergency (the others stay NULL, as with the ORM).
EMERGENCY_COLUMNS = (
    "public_id",
    "source",
    "dedup_key",
    "level",
    "title",
    "description",
    "classification",
    "status",
    "is_drill",
    "leading_group",
    "working_group",
    "opened_at",
    "deadlines",
    "escalation_step",
    "pages_at_step",
    "payload",
    "repeats",
)
EVENT_COLUMNS = ("emergency_id", "kind", "at", "actor", "detail")


@dataclass(frozen=True)
class OpenRow:
    """An open emergency of a dedup key, as `open_emergencies` needs it."""

    id: int
    public_id: str
    source: str
    dedup_key: str
    classification: Classification
    is_drill: bool
    status: EmergencyStatus
    level: Level


@dataclass(frozen=True)
class DispatchRow:
    """An emergency as `mark_dispatched_many` needs it."""

    id: int
    public_id: str
    flow_run_id: str | None
    status: EmergencyStatus
    classification: Classification
    is_drill: bool


@dataclass(frozen=True)
class _Statements:
    dialect: Dialect
    mark: str  # the DBAPI's positional placeholder
    emergency_processors: tuple[Callable[[Any], Any] | None, ...]
    event_processors: tuple[Callable[[Any], Any] | None, ...]
    emergency_table: str  # quoted names, for multi-row INSERTs (`bulk.insert_values`)
    emergency_columns: tuple[str, ...]
    event_table: str
    event_columns: tuple[str, ...]
    max_emergency_id: str
    add_repeats: str
    mark_dispatched: str
    status_processor: Callable[[Any], Any] | None
    for_update: str  # " FOR UPDATE" where the database has row locks
    # PostgreSQL: statements whose text does not depend on the batch size, so psycopg
    # prepares them after a few runs and the server stops parsing and planning them
    # (a plan per batch was about a millisecond for the lookup). None on SQLite,
    # which has no array parameters and prepares statements cheaply in-process.
    open_of_key_arrays: str | None
    next_emergency_ids: str | None
    insert_emergency_arrays: str | None  # `bulk.unnest_insert`
    insert_event_arrays: str | None


def _processors(dialect: Dialect, table: Table, columns: Sequence[str]) -> tuple:
    return tuple(
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
    )


@functools.cache
def _statements(dialect: Dialect) -> _Statements:
    if dialect.paramstyle == "qmark":
        mark = "?"
    elif dialect.paramstyle in ("format", "pyformat"):
        mark = "%s"
    else:  # pragma: no cover - the project runs on SQLite and psycopg
        raise RuntimeError(f"unsupported DBAPI parameter style {dialect.paramstyle}")
    q = dialect.identifier_preparer.quote
    e, ev = Emergency.__table__, EmergencyEvent.__table__
    return _Statements(
        dialect=dialect,
        mark=mark,
        emergency_processors=_processors(dialect, e, EMERGENCY_COLUMNS),
        event_processors=_processors(dialect, ev, EVENT_COLUMNS),
        emergency_table=q(e.name),
        emergency_columns=tuple(map(q, EMERGENCY_COLUMNS)),
        event_table=q(ev.name),
        event_columns=tuple(map(q, EVENT_COLUMNS)),
        max_emergency_id=f"SELECT coalesce(max(id), 0) FROM {q(e.name)}",
        # PostgreSQL (SQLite builds a CASE per chunk, `add_repeats`).
        add_repeats=(
            f"UPDATE {q(e.name)} AS e SET repeats = e.repeats + a.n "
            "FROM unnest(%b::bigint[], %b::int[]) AS a(id, n) WHERE e.id = a.id"
        ),
        mark_dispatched=(
            f"UPDATE {q(e.name)} SET flow_run_id = {mark}, status = {mark} WHERE id = {mark}"
        ),
        status_processor=_processors(dialect, e, ("status",))[0],
        # SQLAlchemy renders with_for_update() as nothing on SQLite (one writer at a time).
        for_update="" if dialect.name == "sqlite" else " FOR UPDATE",
        open_of_key_arrays=None
        if dialect.name != "postgresql"
        # The pairs as two arrays joined to the open-dedup index: a nested loop of index
        # lookups whatever the statistics say (an IN list on each column let the planner
        # scan every open emergency of the source while the table was not yet analysed).
        else (
            "SELECT e.id, e.public_id, e.source, e.dedup_key, e.classification, e.is_drill, "
            "e.status, e.level FROM unnest(%b::text[], %b::text[]) AS k(source, dedup_key) "
            "JOIN emergency AS e ON e.source = k.source AND e.dedup_key = k.dedup_key "
            f"WHERE e.{OPEN_DEDUP_WHERE}"
        ),
        # Ids drawn ahead from the column's own sequence, so the INSERTs need no RETURNING
        # and go out in the write pipeline without waiting. One per key not open now: a key
        # that another process opens meanwhile makes the batch fall back to one by one (its
        # INSERT would break the open-key index anyway), and a refused delivery leaves its id
        # unused, a gap as a rolled-back INSERT leaves. Repeats draw none, so a monitor
        # re-sending its open alerts does not use up the column's ids.
        next_emergency_ids=None
        if dialect.name != "postgresql"
        else (
            f"SELECT nextval(pg_get_serial_sequence('{e.name}', 'id')) FROM generate_series(1, "
            "(SELECT count(*) FROM unnest(%b::text[], %b::text[]) AS k(source, dedup_key) "
            "WHERE NOT EXISTS (SELECT 1 FROM emergency AS e WHERE e.source = k.source "
            f"AND e.dedup_key = k.dedup_key AND e.{OPEN_DEDUP_WHERE})))"
        ),
        insert_emergency_arrays=None
        if dialect.name != "postgresql"
        else bulk.unnest_insert(e, ("id", *EMERGENCY_COLUMNS)),
        insert_event_arrays=None
        if dialect.name != "postgresql"
        else bulk.unnest_insert(ev, EVENT_COLUMNS),
    )


def _convert(processors: tuple, values: Iterable[Any], memo: dict) -> tuple:
    """Each value through its column's bind processor. A batch repeats the same times, enum
    members and flags row after row: those are converted once per batch (`memo`)."""
    out = []
    for p, v in zip(processors, values, strict=True):
        if p is None or v is None:
            out.append(v)
        elif isinstance(v, dict | list):
            out.append(p(v))
        else:
            key = (p, type(v), v)
            if key not in memo:
                memo[key] = p(v)
            out.append(memo[key])
    return tuple(out)


class IntakeWriter:
    """The statements of one `open_emergencies` call, on its session's DBAPI connection."""

    def __init__(self, session: Session) -> None:
        # Anything the ORM holds pending goes first, as an ORM query would autoflush it.
        session.flush()
        connection = session.connection()  # begins the transaction (BEGIN IMMEDIATE)
        self.sql = _statements(connection.dialect)
        self.cursor = connection.connection.driver_connection.cursor()
        self.sqlite = connection.dialect.name == "sqlite"
        # Parameters per statement (an IN list, a CASE, a multi-row VALUES): SQLite's cap
        # (`bulk.sqlite_parameter_cap`); PostgreSQL allows 65,535, and the same bound keeps
        # its IN lists as short.
        self.max_parameters = (
            bulk.sqlite_parameter_cap(self.cursor) if self.sqlite else bulk.SQLITE_MAX_PARAMETERS
        )
        # PostgreSQL, filled by `look_up`: ids for the new rows.
        self._new_ids: list[int] = []

    def look_up(
        self, keys: set[tuple[str, str]], group_codes: set[str]
    ) -> tuple[dict[tuple[str, str], OpenRow], set[str]]:
        """The open emergencies of these keys and which of these working groups exist.

        PostgreSQL: one round trip (a pipeline) that also draws an id for every key not
        open, so that `writes` can send the batch's rows without waiting for RETURNING. Each
        round trip let go of the interpreter lock and waited to get it back from the event
        loop: twelve of them were most of a batch's time under load; now there are five
        (the pool's pre-ping, this one, two in `writes`, the COMMIT). SQLite: the two
        SELECTs, in process."""
        if self.sqlite:
            return self.open_of_keys(keys), self.known_groups(group_codes)
        connection = self.cursor.connection
        ordered = sorted(keys)
        with connection.pipeline():
            open_cursor, ids_cursor = connection.cursor(), connection.cursor()
            key_arrays = ([s for s, _ in ordered], [k for _, k in ordered])
            open_cursor.execute(self.sql.open_of_key_arrays, key_arrays)
            groups_cursor = self._send_known_groups(connection.cursor(), group_codes)
            ids_cursor.execute(self.sql.next_emergency_ids, key_arrays)
        open_rows = self._open_rows(keys, open_cursor.fetchall())
        known = {row[0] for row in groups_cursor.fetchall()} if groups_cursor else set()
        self._new_ids = [row[0] for row in ids_cursor.fetchall()]
        for cursor in (open_cursor, ids_cursor, groups_cursor):
            if cursor is not None:
                cursor.close()
        return open_rows, known

    def writes(self) -> contextlib.AbstractContextManager:
        """The batch's writes. PostgreSQL: one pipeline, two round trips: the trail head's
        read (`trail.append_many`, which locks it after the rows, the order every writer
        takes them) and the end of the block, where the entries go as arrays
        (`bulk.insert_many`). An error of any write is raised at one of them and the
        transaction rolls back whole, as before."""
        return contextlib.nullcontext() if self.sqlite else self.cursor.connection.pipeline()

    def _in(self, count: int) -> str:
        return "(" + ", ".join([self.sql.mark] * count) + ")"

    def open_of_keys(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], OpenRow]:
        """SQLite: the open emergencies of these (source, dedup key) pairs, a SELECT per
        chunk."""
        found: dict[tuple[str, str], OpenRow] = {}
        for rows in self._open_rows_of(sorted(keys)):
            found |= self._open_rows(keys, rows)
        return found

    @staticmethod
    def _open_rows(keys: set[tuple[str, str]], rows: list[tuple]) -> dict:
        found: dict[tuple[str, str], OpenRow] = {}
        for row in rows:
            key = (row[2], row[3])
            if key in keys:
                found[key] = OpenRow(
                    id=row[0],
                    public_id=row[1],
                    source=row[2],
                    dedup_key=row[3],
                    classification=Classification(row[4]),
                    is_drill=bool(row[5]),
                    status=EmergencyStatus(row[6]),
                    level=Level(row[7]),
                )
        return found

    def _open_rows_of(self, ordered: list[tuple[str, str]]) -> Iterator[list[tuple]]:
        """SQLite: the pairs as IN lists, a statement per chunk (PostgreSQL: `look_up`)."""
        per_statement = self.max_parameters // 2
        for start in range(0, len(ordered), per_statement):
            chunk = ordered[start : start + per_statement]
            sources = sorted({s for s, _ in chunk})
            dedup_keys = [k for _, k in chunk]
            self.cursor.execute(
                "SELECT id, public_id, source, dedup_key, classification, is_drill, status, "
                f"level FROM emergency WHERE source IN {self._in(len(sources))} "
                f"AND dedup_key IN {self._in(len(dedup_keys))} AND {OPEN_DEDUP_WHERE}",
                (*sources, *dedup_keys),
            )
            yield self.cursor.fetchall()

    def known_groups(self, codes: set[str]) -> set[str]:
        if self._send_known_groups(self.cursor, codes) is None:
            return set()
        return {row[0] for row in self.cursor.fetchall()}

    def _send_known_groups(self, cursor, codes: set[str]):
        if not codes:
            return None
        table = self.sql.dialect.identifier_preparer.quote(Group.__table__.name)
        if self.sqlite:
            cursor.execute(
                f"SELECT code FROM {table} WHERE code IN {self._in(len(codes))}",
                tuple(sorted(codes)),
            )
        else:  # one text whatever the count, so psycopg prepares it
            cursor.execute(
                f"SELECT code FROM {table} WHERE code = ANY(%b::text[])", (sorted(codes),)
            )
        return cursor

    def insert_emergencies(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        """Insert the new emergencies; returns their ids by public id."""
        processors, memo = self.sql.emergency_processors, {}
        converted = [
            _convert(processors, (row[name] for name in EMERGENCY_COLUMNS), memo) for row in rows
        ]
        if self.sqlite:
            return self._insert_numbered(rows, converted)
        # PostgreSQL: numbered with the ids `look_up` drew (one per key not open), in one
        # statement of arrays that the batch's pipeline carries (`writes`).
        if len(rows) > len(self._new_ids):
            # A key was opened by another process between the two SELECTs of `look_up`: the
            # batch rolls back and the group commit writes it one by one.
            raise RuntimeError("insert_emergencies: more new rows than ids drawn by look_up")
        ids = dict(zip((row["public_id"] for row in rows), self._new_ids, strict=False))
        bulk.insert_arrays(
            self.cursor,
            self.sql.insert_emergency_arrays,
            [(ids[row["public_id"]], *values) for row, values in zip(rows, converted, strict=True)],
        )
        return ids

    def _insert_numbered(
        self, rows: list[dict[str, Any]], converted: list[tuple]
    ) -> dict[str, int]:
        """SQLite: the new rows numbered here, after the highest id, in multi-row INSERTs.

        Why not RETURNING: it steps the statement once per row, and sqlite3 lets go of the
        GIL around every step, which the gateway's event loop then held
        (`bulk.insert_values`). The transaction holds SQLite's write lock (BEGIN IMMEDIATE),
        so nobody numbers rows meanwhile, and these are the ids SQLite would have given; a
        transaction without the lock would fail ("database is locked", or on the primary
        key), never share an id."""
        self.cursor.execute(self.sql.max_emergency_id)
        first = self.cursor.fetchone()[0] + 1
        bulk.insert_values(
            self.cursor,
            self.sql.emergency_table,
            ("id", *self.sql.emergency_columns),
            [(first + n, *values) for n, values in enumerate(converted)],
        )
        return {row["public_id"]: first + n for n, row in enumerate(rows)}

    def add_repeats(self, added: dict[int, int]) -> None:
        """repeats = repeats + n per emergency (never a lost count under concurrency)."""
        if not added:
            return
        if not self.sqlite:  # one statement of two arrays, whatever the count
            ids, counts = zip(*sorted(added.items()), strict=True)
            self.cursor.execute(self.sql.add_repeats, (list(ids), list(counts)))
            return
        # SQLite: one UPDATE per chunk, not one step per row (`bulk.insert_values` says why).
        items = sorted(added.items())
        per_statement = self.max_parameters // 3
        for start in range(0, len(items), per_statement):
            chunk = items[start : start + per_statement]
            self.cursor.execute(
                f"UPDATE {self.sql.emergency_table} SET repeats = repeats + CASE id "
                + " ".join(["WHEN ? THEN ?"] * len(chunk))
                + f" END WHERE id IN {self._in(len(chunk))}",
                [v for pair in chunk for v in pair] + [i for i, _ in chunk],
            )

    def insert_events(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        processors, memo = self.sql.event_processors, {}
        converted = [
            _convert(processors, (row[name] for name in EVENT_COLUMNS), memo) for row in rows
        ]
        if self.sqlite:
            bulk.insert_values(self.cursor, self.sql.event_table, self.sql.event_columns, converted)
        else:
            bulk.insert_arrays(self.cursor, self.sql.insert_event_arrays, converted)

    def dispatch_state(self, public_ids: Sequence[str]) -> dict[str, DispatchRow]:
        """The emergencies of these public ids, locked for update, by public id."""
        found: dict[str, DispatchRow] = {}
        for start in range(0, len(public_ids), self.max_parameters):
            chunk = list(public_ids[start : start + self.max_parameters])
            self.cursor.execute(
                "SELECT id, public_id, flow_run_id, status, classification, is_drill "
                f"FROM emergency WHERE public_id IN {self._in(len(chunk))}{self.sql.for_update}",
                chunk,
            )
            for row in self.cursor.fetchall():
                found[row[1]] = DispatchRow(
                    id=row[0],
                    public_id=row[1],
                    flow_run_id=row[2],
                    status=EmergencyStatus(row[3]),
                    classification=Classification(row[4]),
                    is_drill=bool(row[5]),
                )
        return found

    def mark_dispatched(self, marks: list[tuple[int, str, EmergencyStatus]]) -> None:
        """(emergency id, flow run id, new status) each: one executemany."""
        status = self.sql.status_processor or (lambda v: v)
        self.cursor.executemany(
            self.sql.mark_dispatched, [(run, status(st), i) for i, run, st in marks]
        )

    def close(self) -> None:
        self.cursor.close()
