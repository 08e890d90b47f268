"""The domain database: engine, sessions and the unit of work.

SQLite (the default, a file under var/) runs with WAL, foreign keys on and
`BEGIN IMMEDIATE` transactions, so concurrent writers queue on the lock
instead of failing half-way. PostgreSQL is selected by TASKFORCE_DATABASE_URL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import JSON, BigInteger, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from taskforce.policy.loader import PROJECT_ROOT

DATABASE_URL_ENV = "TASKFORCE_DATABASE_URL"
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "var" / "taskforce.db"

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware (UTC) datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


# JSON that is JSONB on PostgreSQL.
JSONType = JSON().with_variant(postgresql.JSONB(), "postgresql")
# Integer fen; BIGINT everywhere (SQLite's INTEGER is 64-bit already).
Fen = BigInteger


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict: JSONType, list: JSONType}  # noqa: RUF012


def database_url() -> str:
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    DEFAULT_SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


# How long an SQLite statement waits for another process's write lock before it fails
# with "database is locked".
SQLITE_BUSY_TIMEOUT_SECONDS = 30


def is_database_locked(exc: BaseException) -> bool:
    """An SQLite error raised because another connection held the write lock too long."""
    orig = getattr(exc, "orig", exc)
    return isinstance(orig, sqlite3.OperationalError) and "database is locked" in str(orig)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Take the write lock up front: a deferred transaction that later
        # writes can fail with "database is locked" instead of waiting.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


# SQLite files (and folders) that did not exist when this process first opened their URL:
# what `forget_created_sqlite` may remove again.
_created_sqlite: dict[str, tuple[Path, list[Path]]] = {}


def make_engine(url: str | None = None, **kwargs) -> Engine:
    url = url or database_url()
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            path = Path(url.removeprefix("sqlite:///"))
            if not path.exists():
                missing = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
                _created_sqlite.setdefault(url, (path, missing))
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            **kwargs,
        )
        _sqlite_setup(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


_engines: dict[str, Engine] = {}


def forget_created_sqlite(engine: Engine) -> bool:
    """Remove the SQLite file this process created by opening `engine`'s URL, with its log
    files and the folders made for it, if it holds no table: what a command run against a
    mistyped path left behind. Returns whether anything was removed."""
    url = engine.url.render_as_string(hide_password=False)
    created = _created_sqlite.pop(url, None)
    if created is None:
        return False
    path, folders = created
    engine.dispose()  # close the pool's connections before the files go
    with sqlite3.connect(path) as probe:  # never remove a file that has become a database
        if probe.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            return False
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        leftover.unlink(missing_ok=True)
    for folder in folders:  # innermost first; only the empty ones
        try:
            folder.rmdir()
        except OSError:
            break
    return True


def get_engine(url: str | None = None) -> Engine:
    """One engine per URL per process."""
    url = url or database_url()
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    return _session_factory(engine or get_engine())


@functools.lru_cache(maxsize=64)
def _session_factory(engine: Engine) -> sessionmaker[Session]:
    # One per engine: a new sessionmaker per transaction built a Session class and its event
    # dispatch every time (a third of a millisecond per transaction, seen in the gateway).
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextlib.contextmanager
def unit_of_work(engine: Engine | None = None) -> Iterator[Session]:
    """One transaction: commit on success, roll back everything on any error."""
    session = session_factory(engine)()
    try:
        with session.begin():
            yield session
    finally:
        session.close()


__all__ = [
    "Base",
    "Fen",
    "JSONType",
    "UTCDateTime",
    "database_url",
    "get_engine",
    "make_engine",
    "session_factory",
    "unit_of_work",
]
