"""`taskforce gateway`: run the webhook gateway with uvicorn."""

from __future__ import annotations

import typer

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
) -> None:
    """Serve the gateway until stopped (Ctrl-C)."""
    import uvicorn

    from taskforce.emergency.dispatch import no_dispatcher
    from taskforce.gateway.app import create_app, default_context

    policy = default_context().policy
    dispatcher = no_dispatcher
    if dispatch:
        # The Prefect client lives with the flows; the gateway only gets a callable.
        from flows.emergency import PrefectDispatcher

        dispatcher = PrefectDispatcher(
            deployment=policy.gateway.deployment,
            timeout_seconds=policy.gateway.dispatch_timeout_seconds,
        )
    uvicorn.run(
        create_app(dispatcher=dispatcher),
        host=host or policy.gateway.host,
        port=port or policy.gateway.port,
        log_level="info",
    )


@app.command("openapi")
def openapi() -> None:
    """Print the gateway's OpenAPI schema (JSON)."""
    import json

    from taskforce.gateway.app import create_app

    typer.echo(json.dumps(create_app().openapi(), indent=2, ensure_ascii=False))
