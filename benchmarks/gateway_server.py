"""The gateway as the intake figure serves it: `uvicorn --factory benchmarks.gateway_server:app`.

The production app (`taskforce.gateway.asgi`) with two differences, both for measuring:
the dispatcher answers at once instead of calling Prefect (dispatch runs in a background
thread after the 202 either way, so it is not on the measured path), and one more route,
`POST /bench/empty`, answers 202 with no work: the baseline, served by the same process
with the same server settings. Settings come from the environment (uvicorn imports this
in each worker process): TASKFORCE_DATABASE_URL and TASKFORCE_WEBHOOK_SECRET_MONITORING.
"""

from __future__ import annotations

from fastapi import FastAPI, Response

from taskforce.gateway.app import create_app


def instant_dispatcher(public_id: str) -> str:
    """A Prefect that answers at once: the intake figure measures intake, not flow starts."""
    return f"bench-run-{public_id}"


def app() -> FastAPI:
    gateway = create_app(dispatcher=instant_dispatcher, background_dispatch=True)

    @gateway.post("/bench/empty", status_code=202, include_in_schema=False)
    async def empty() -> Response:
        return Response(status_code=202)

    return gateway
