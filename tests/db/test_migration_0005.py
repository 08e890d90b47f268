"""Migration 0005_trail_rowid on a trail with entries: the chain and its guards survive the
rebuild (SQLite) or the dropped constraint (PostgreSQL), and the downgrade restores both."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from taskforce import trail
from taskforce.migrate import alembic_config
from tests.db.test_trail import _append as append_entries


def _alembic(engine, verb: str, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        getattr(command, verb)(cfg, revision)
    engine.dispose()  # pooled SQLite connections keep the old schema's prepared statements


def _append(engine, first: int, count: int) -> None:
    with Session(engine) as s, s.begin():
        append_entries(s, count, first=first)


def _hash_is_unique(engine) -> bool:
    return any(
        c["column_names"] == ["hash"] for c in inspect(engine).get_unique_constraints("trail_entry")
    )


def _id_is_the_rowid(engine) -> bool:
    with engine.connect() as c:
        autoindexes = c.execute(
            text(
                "SELECT count(*) FROM sqlite_master WHERE tbl_name = 'trail_entry' "
                "AND name LIKE 'sqlite_autoindex%'"
            )
        ).scalar()
    return autoindexes == 0


def test_trail_rowid_migration_keeps_the_chain_and_its_guards(engine):
    _append(engine, 0, 4)
    _alembic(engine, "downgrade", "0004_sweep")
    assert _hash_is_unique(engine)
    if engine.dialect.name == "sqlite":
        assert not _id_is_the_rowid(engine)
    _append(engine, 4, 3)  # entries written under the old schema

    _alembic(engine, "upgrade", "head")

    assert not _hash_is_unique(engine)
    if engine.dialect.name == "sqlite":
        assert _id_is_the_rowid(engine)
    _append(engine, 7, 2)  # and after it
    with Session(engine) as s:
        result = trail.verify(s)
    assert result.ok, result.first_break
    assert result.entries == 9
    with engine.connect() as c:
        assert list(c.execute(text("SELECT id FROM trail_entry ORDER BY id")).scalars()) == list(
            range(1, 10)
        )
    for statement in ("UPDATE trail_entry SET actor = 'x' WHERE id = 1", "DELETE FROM trail_entry"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as c:
            c.execute(text(statement))
