"""Bulk writes through the DBAPI cursor of a session's connection, in its transaction.

SQLAlchemy's executemany processes every parameter of every row in Python (bind processors,
a dict per row, the compiled statement's parameter map): for the tens of thousands of trail,
outbox and warning rows of a dispatch sweep that was most of the time of writing them
(benchmarks/RESULTS.md). Here the values are converted once, exactly as the column types
would store them, and handed to the driver as tuples (`insert_many`).

What the SQLAlchemy types store, and so what these helpers produce:

- `UTCDateTime` (taskforce/db.py): on SQLite the naive UTC text of SQLite's DATETIME
  ('YYYY-MM-DD HH:MM:SS.ffffff', always six fraction digits); on PostgreSQL the aware UTC
  datetime itself (psycopg binds it as timestamptz).
- `enum_column` (VARCHAR + CHECK, values stored): the member's value.
- `JSONType`: on SQLite `json.dumps(value)` (SQLAlchemy's default serializer); on PostgreSQL
  the same text cast to jsonb by the server (JSONB keeps the value, not the text).
- Boolean: Python bools (sqlite3 stores 1/0 as SQLAlchemy does; psycopg binds booleans).

Tests compare rows written here with rows written through SQLAlchemy, column by column, on
both backends (tests/loop/test_bulk_writes.py).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from json.encoder import (  # type: ignore[attr-defined]
    c_make_encoder,
    encode_basestring,
    encode_basestring_ascii,
)
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, Table, TypeDecorator, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from taskforce.db import Base

UTC = dt.UTC


def is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def stored_time(value: dt.datetime | None, sqlite: bool) -> Any:
    """An aware datetime as `UTCDateTime` hands it to the driver."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the database; use an aware (UTC) datetime")
    value = value.astimezone(UTC)
    if not sqlite:
        return value
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


class TimeCache:
    """`stored_time` memoised per datetime: a bulk write's rows mostly share one instant
    (the sweep's `now`), and converting it once per row was a visible share of the write."""

    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite
        self._seen: dict[dt.datetime, Any] = {}

    def __call__(self, value: dt.datetime | None) -> Any:
        if value is None:
            return None
        try:
            return self._seen[value]
        except KeyError:
            out = self._seen[value] = stored_time(value, self.sqlite)
            return out


def one_shot_encoder(
    default: Callable[[Any], Any],
    *,
    ensure_ascii: bool,
    sort_keys: bool,
    separators: tuple[str, str],
) -> Callable[[Any], str]:
    """`json.JSONEncoder(...).encode` with the C encoder built once, not once per call
    (`JSONEncoder.iterencode` builds it, and a dict of markers, for every value: a visible
    share of encoding tens of thousands of small payloads). The output is the encoder's, byte
    for byte (tests/loop/test_bulk_writes.py); only a circular structure differs, failing
    with RecursionError instead of ValueError."""
    item_separator, key_separator = separators
    encoder = json.JSONEncoder(
        ensure_ascii=ensure_ascii,
        sort_keys=sort_keys,
        separators=separators,
        default=default,
    )
    if c_make_encoder is None:  # a Python without the C accelerator
        return encoder.encode
    encode = c_make_encoder(
        None,
        default,
        encode_basestring_ascii if ensure_ascii else encode_basestring,
        None,
        key_separator,
        item_separator,
        sort_keys,
        False,
        True,
    )

    def run(value: Any) -> str:
        return "".join(encode(value, 0))

    return run


# json.dumps(value) with its default options: what SQLAlchemy's JSON type stores.
stored_json = one_shot_encoder(
    json.JSONEncoder().default, ensure_ascii=True, sort_keys=False, separators=(", ", ": ")
)


def insert_many(
    session: Session,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """INSERT the rows (tuples in `columns` order) in the session's transaction: multi-row
    INSERTs on SQLite (`insert_values`), COPY on PostgreSQL, or one statement of arrays
    (`unnest_insert`) when the connection is in a pipeline. JSON columns take their text
    (`stored_json`)."""
    rows = rows if isinstance(rows, list) else list(rows)
    if not rows:
        return
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        if is_sqlite(session):
            insert_values(cursor, table, columns, rows)
        elif cursor.connection.pgconn.pipeline_status:
            # In a psycopg pipeline (the gateway's batch), where COPY cannot run.
            insert_arrays(cursor, _unnest_insert_of(table, tuple(columns)), rows)
        else:
            copy_rows(cursor, table, columns, rows)
    finally:
        cursor.close()


# Parameters per SQLite statement: far below SQLite's limit (32,766 since 3.32), and big
# enough that a statement carries hundreds of rows.
SQLITE_MAX_PARAMETERS = 8000
# Values per `IN (...)` list built with SQLAlchemy: under the 999 bound parameters of SQLite
# builds before 3.32, so a query never depends on how the library was built.
IN_LIST_SIZE = 900


def chunks(values: Sequence[Any], size: int = IN_LIST_SIZE) -> Iterable[Sequence[Any]]:
    """`values` in consecutive slices of at most `size` (by default, one `IN (...)` list)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def member_clauses(session: Session, column, values: Sequence[Any], size: int) -> Iterable:
    """WHERE clauses that together select the rows whose `column` is one of `values`: on
    PostgreSQL one `= ANY(array)` with the values as a single parameter (an IN list of
    thousands of parameters cost more to send and plan than the lookup); on SQLite `IN`
    lists of at most `size` values (its bound-parameter limit)."""
    if not values:
        return
    if is_sqlite(session):
        for part in chunks(values, size):
            yield column.in_(part)
        return
    yield column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))


def sqlite_parameter_cap(cursor) -> int:
    """SQLITE_MAX_PARAMETERS, or the connection's own limit where it is lower (999 by
    default before SQLite 3.32, and builds may set less)."""
    limit = cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return min(SQLITE_MAX_PARAMETERS, limit)


def insert_values(
    cursor, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """SQLite: the rows as `INSERT … VALUES (…), (…), …`, as many rows per statement as
    `sqlite_parameter_cap` allows.

    Why not the driver's executemany: it steps the statement once per row, and sqlite3
    lets go of the GIL around every step. In the gateway, whose event loop holds the GIL
    while it serves requests, each step then waited to get it back; one statement of many
    rows is one step (benchmarks/RESULTS.md, session 6). It is no slower for the sweep's
    hundreds of thousands of rows either."""
    per_statement = max(1, sqlite_parameter_cap(cursor) // len(columns))
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    one = "(" + ", ".join("?" for _ in columns) + ")"
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        cursor.execute(head + ", ".join([one] * len(chunk)), [v for row in chunk for v in row])


def copy_rows(cursor, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """PostgreSQL: the rows through COPY … FROM STDIN (psycopg), a stream rather than a
    statement per row; constraints and defaults apply as for INSERT. JSON columns take their
    text, which the server parses as jsonb."""
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def unnest_insert(table: Table, columns: Sequence[str]) -> str:
    """PostgreSQL: `INSERT INTO table (columns) SELECT * FROM unnest(%b::type[], …)`, which
    takes the rows as one binary array per column (`insert_arrays`; in text format psycopg
    escapes each element with a regular expression).

    Why: its text does not depend on the row count, so psycopg parses it once and prepares
    it, where executemany costs a round of Python per row and a multi-row VALUES (a text per
    row count, too long for psycopg's query cache) was parsed again on every call. Strings
    go as text[], never varchar(n)[]: a cast would cut an over-long value where the INSERT
    refuses it."""
    casts = [f"%b::{_array_element_type(table.c[name].type)}[]" for name in columns]
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({', '.join(casts)})"
    )


def insert_arrays(cursor, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run an `unnest_insert` statement for `rows` (tuples in its columns' order)."""
    if rows:
        cursor.execute(statement, [list(column) for column in zip(*rows, strict=True)])


@functools.cache
def _unnest_insert_of(table: str, columns: tuple[str, ...]) -> str:
    return unnest_insert(Base.metadata.tables[table], columns)


def _array_element_type(column_type: TypeEngine) -> str:
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    if isinstance(column_type, JSON):
        return "jsonb"
    if isinstance(column_type, DateTime):
        return "timestamptz"
    if isinstance(column_type, Boolean):
        return "boolean"
    if isinstance(column_type, Integer):
        return "bigint"
    return "text"
