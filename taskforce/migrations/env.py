"""Alembic environment: the URL comes from TASKFORCE_DATABASE_URL (or the SQLite default)."""

from __future__ import annotations

from alembic import context

import taskforce.models  # noqa: F401  (registers every table)
from taskforce.db import Base, get_engine

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connectable = context.config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    engine = get_engine(context.config.get_main_option("sqlalchemy.url") or None)
    with engine.connect() as connection:
        _run(connection)
        connection.commit()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `taskforce migrate`")
run_migrations_online()
