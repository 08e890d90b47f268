"""The gateway as an ASGI factory, for uvicorn with several worker processes:

    uvicorn --factory taskforce.gateway.asgi:create_production_app \
        --host 127.0.0.1 --port 8765 --workers 4

Each worker process builds its own app: its own database engine
(TASKFORCE_DATABASE_URL) and its own Prefect client (PREFECT_API_URL,
PREFECT_API_AUTH_STRING). They share no memory, so any number of them can run
behind one socket or a load balancer: duplicates are caught by the database's
unique dedup key and by the flow run's idempotency key, not by the process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

from taskforce.gateway.app import create_app, default_context


def create_production_app() -> FastAPI:
    """The app `taskforce gateway serve` runs: every emergency starts its flow run in Prefect,
    from a background thread after the 202 (intake does not wait on the Prefect API)."""
    # The Prefect client lives with the flows; the gateway only gets a callable.
    with _uvicorn_logging_kept():
        from flows.emergency import PrefectDispatcher

    gateway = default_context().policy.gateway
    return create_app(
        dispatcher=PrefectDispatcher(
            deployment=gateway.deployment,
            timeout_seconds=gateway.dispatch_timeout_seconds,
            connect_retries=gateway.dispatch_connect_retries,
        ),
        background_dispatch=True,
        intake_process=gateway.intake_process,
    )


@contextmanager
def _uvicorn_logging_kept() -> Iterator[None]:
    """Keep the logging uvicorn set up before it called this factory.

    Prefect's first import configures logging (prefect/main.py: setup_logging), and its
    logging.yml sets the `uvicorn` logger to WARNING with Prefect's handler, which resets
    `uvicorn.error` and `uvicorn.access`: the gateway would print no startup line, access
    log or shutdown line. Prefect's other loggers and the root logger stay as it set them."""
    loggers = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    kept = [(lg.level, lg.handlers[:], lg.propagate, lg.disabled) for lg in loggers]
    try:
        yield
    finally:
        for lg, (level, handlers, propagate, disabled) in zip(loggers, kept, strict=True):
            lg.setLevel(level)
            lg.handlers[:] = handlers
            lg.propagate, lg.disabled = propagate, disabled
