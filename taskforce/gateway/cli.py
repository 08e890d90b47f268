"""`taskforce gateway`: run the webhook gateway with uvicorn."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from taskforce.policy.schema import GatewayPolicy

app = typer.Typer(help="The emergency webhook gateway (应急网关).", no_args_is_help=True)


@app.command("serve")
def serve(
    host: str = typer.Option(None, help="Address to bind; default gateway.host (127.0.0.1)."),
    port: int = typer.Option(None, help="Port; default gateway.port."),
    dispatch: bool = typer.Option(
        True,
        help="Start an emergency-response flow run per emergency through the Prefect API "
        "(PREFECT_API_URL). Without it, emergencies stay pending and on-call is paged directly.",
    ),
    workers: int = typer.Option(
        1,
        min=1,
        help="uvicorn worker processes (each its own database engine and Prefect client).",
    ),
) -> None:
    """Serve the gateway until stopped (Ctrl-C)."""
    import uvicorn

    from taskforce.gateway.app import default_context

    bind = server_settings(default_context().policy.gateway, host=host, port=port)
    if dispatch:
        # An import string, so uvicorn can start the app in each worker process.
        uvicorn.run(
            "taskforce.gateway.asgi:create_production_app", factory=True, workers=workers, **bind
        )
        return
    from taskforce.gateway.app import create_app

    if workers > 1:
        raise typer.BadParameter("--workers needs --dispatch", param_hint="--workers")
    uvicorn.run(create_app(), **bind)


def server_settings(
    gateway: GatewayPolicy, *, host: str | None = None, port: int | None = None
) -> dict:
    """uvicorn's settings for the gateway: the address (the options, else config) and how
    long an idle connection stays open (gateway.keep_alive_seconds; uvicorn's own 5 s is
    what HTTP clients keep theirs, so a client could send on a connection being closed)."""
    return {
        "host": host or gateway.host,
        "port": port or gateway.port,
        "log_level": "info",
        "log_config": log_config(),
        "timeout_keep_alive": gateway.keep_alive_seconds,
    }


def log_config() -> dict:
    """uvicorn's logging, and the gateway's own lines (a refused alert: Alertmanager reads
    no answer) through its handler: with a level and a time, with or without Prefect."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["taskforce"] = {
        "()": "logging.Formatter",
        "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s",
    }
    config["handlers"]["taskforce"] = {
        "formatter": "taskforce",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["taskforce"] = {
        "handlers": ["taskforce"],
        "level": "INFO",
        "propagate": False,
    }
    return config


@app.command("openapi")
def openapi() -> None:
    """Print the gateway's OpenAPI schema (JSON)."""
    import json

    from taskforce.gateway.app import create_app

    typer.echo(json.dumps(create_app().openapi(), indent=2, ensure_ascii=False))


@app.command("sweep")
def sweep() -> None:
    """Dispatch pending emergencies; escalate pages, missed deadlines and warnings; close
    resolved emergencies with their follow-up issue. Once.

    The `dispatch-pending-emergencies` deployment does this every minute; run
    this from cron while the Prefect server itself is down.
    """
    from rich.console import Console

    from flows.emergency import default_dispatcher
    from taskforce.db import get_engine, unit_of_work
    from taskforce.emergency.dispatch import dispatch_pending
    from taskforce.emergency.paging import rows_to_send
    from taskforce.emergency.service import (
        close_resolved,
        escalate_due,
        escalate_missed_deadlines,
    )
    from taskforce.emergency.warnings import escalate_overdue_warnings
    from taskforce.gateway.app import default_context
    from taskforce.notify.delivery import deliver_pending

    ctx = default_context()
    # Escalations first: they need only the database, and must not wait for a slow Prefect.
    # Dispatch runs whatever they raised (the command then fails, after dispatching).
    try:
        with unit_of_work() as session:
            escalations = escalate_due(session, ctx)
            missed = escalate_missed_deadlines(session, ctx)
            warnings = escalate_overdue_warnings(session, ctx)
            closed = close_resolved(session, ctx, actor="cli-sweep")
        if escalations:  # their pages go now, priority first, not with the next delivery
            deliver_pending(get_engine(), ctx, limit=rows_to_send(escalations))
    finally:
        outcomes = dispatch_pending(get_engine(), ctx, default_dispatcher(), actor="cli-sweep")
    console = Console()
    for o in outcomes:
        console.print(
            f"{o.public_id}: {'dispatched' if o.dispatched else 'pending: ' + str(o.error)}"
        )
    for e in escalations:
        console.print(f"{e.public_id}: {e.action} at {e.step} ({', '.join(e.paged) or '-'})")
    for public_id, name in missed:
        console.print(f"{public_id}: deadline {name} missed, escalated")
    console.print(f"warnings escalated: {len(warnings)}; closed with follow-up: {len(closed)}")
