"""Two transactions at once, in tests: wait until the second waits for the first's lock."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, text


def until_waiting_for_a_lock(engine: Engine, racing: threading.Thread) -> None:
    """Until the transaction in `racing` waits for a lock another transaction holds, or
    `racing` has finished. PostgreSQL's own view says so; on SQLite a writer's
    `BEGIN IMMEDIATE` queues behind the other, so there is nothing to wait for."""
    if engine.dialect.name == "sqlite":
        return
    for _ in range(600):
        racing.join(0.05)
        with engine.connect() as probe:
            waiting = probe.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            )
        if waiting or not racing.is_alive():
            return
