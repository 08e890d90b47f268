"""The webhook gateway: monitoring systems open emergencies over authenticated HTTP.

Every request is checked in this order, and a failed check answers a 4xx
JSON error and writes nothing: content type (415), size (413), the sender's
credentials (401: signature and timestamp, bearer token or routing key), JSON
syntax (400), the body's fields (422). Then the emergency is committed and
only then acknowledged (202 with its id); the flow run that moves it is
started after the commit (see taskforce/emergency/dispatch.py) by the dispatch
thread: before the 202 (the default of `create_app`: the request waits for it), or,
in production, after the 202, so intake never waits on the Prefect API.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, NamedTuple, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency import service
from taskforce.emergency.dispatch import BackgroundDispatch, Dispatcher, no_dispatcher
from taskforce.emergency.forms import EmergencyIntake, nul_path
from taskforce.emergency.models import Level
from taskforce.errors import DomainError, NotFound, problem_text
from taskforce.gateway import auth
from taskforce.gateway.errors import GatewayError
from taskforce.gateway.group_commit import GroupCommit
from taskforce.gateway.intake_process import IntakeProcess
from taskforce.gateway.schemas import (
    NUL_CHECKED,
    Accepted,
    ActionResult,
    AlertmanagerAccepted,
    AlertmanagerWebhook,
    AlertResult,
    ErrorBody,
    NativeAction,
    NativeTrigger,
    PagerDutyAccepted,
    PagerDutyEvent,
    Problem,
)
from taskforce.policy import load_policy
from taskforce.process import freeze_startup_objects

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)
ERRORS = {
    code: {"model": ErrorBody, "description": description}
    for code, description in {
        400: "Malformed JSON (also NaN or Infinity, a number beyond a double, a name given twice)",
        401: "Missing or bad signature, token or routing key; stale timestamp",
        404: "Unknown source, or no open emergency for the dedup key",
        413: "Body larger than gateway.max_body_bytes",
        415: "Content type is not application/json",
        422: "Missing, unknown or invalid fields (e.g. an unknown level)",
    }.items()
}


@functools.cache
def _default_policy():
    return load_policy()


@functools.cache
def default_context() -> Context:
    # One per process: the policy is read once and the system clock holds no state.
    return Context(policy=_default_policy())


def create_app(
    ctx_factory: Callable[[], Context] = default_context,
    dispatcher: Dispatcher = no_dispatcher,
    *,
    engine: Engine | None = None,
    environ: Mapping[str, str] | None = None,
    background_dispatch: bool = False,
    intake_process: bool = False,
) -> FastAPI:
    """The gateway app. `engine` defaults to TASKFORCE_DATABASE_URL's, `environ` to os.environ.

    With `background_dispatch`, a new emergency is answered 202 as `pending_dispatch` right
    after its commit and its flow run is started by a background thread (see
    `BackgroundDispatch`); without it, the request starts the run before answering.
    With `intake_process` too (the production gateway's `gateway.intake_process`), the
    writing and that thread are in a child process (see intake_process.py).
    """
    if intake_process and not background_dispatch:
        raise ValueError(
            "intake_process needs background_dispatch (the child pages and dispatches)"
        )
    env = environ if environ is not None else os.environ
    group_commit = GroupCommit(engine)
    writer: GroupCommit | IntakeProcess = group_commit
    if intake_process:
        writer = IntakeProcess(
            engine,
            ctx_factory,
            dispatcher,
            paging_hold_seconds=ctx_factory().policy.gateway.paging_hold_seconds,
        )
    # One dispatch thread either way: without background dispatch the request waits for
    # its emergency's outcome, and a burst is still paged and dispatched in batches. (With
    # an intake process, the child's pages and dispatches: this one is never started.)
    dispatch_queue = BackgroundDispatch(
        engine, ctx_factory, dispatcher, write_lock=group_commit.write_lock
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # A full collection walked every start-up object (modules, the ORM's and pydantic's
        # machinery, the app): a 100-130 ms pause that every request in flight waited out
        # (benchmarks/figures/gateway.py, p99). A server can afford one collection first.
        freeze_startup_objects(collect_first=True)
        if isinstance(writer, IntakeProcess):
            writer.start()
            yield
            await run_in_threadpool(writer.close)  # the child pages what it holds, then exits
            return
        dispatch_queue.start()
        yield
        await run_in_threadpool(dispatch_queue.close)  # start what was queued before exiting

    app = GatewayApp(
        title="Task-force emergency gateway 应急网关",
        version="1",
        description=__doc__,
        lifespan=lifespan,
    )
    app.state.dispatch_queue = dispatch_queue  # closed by the lifespan (or a test's server)
    app.state.intake_process = writer if isinstance(writer, IntakeProcess) else None

    @app.exception_handler(GatewayError)
    async def _gateway_error(_request: Request, exc: GatewayError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(_invalid(exc.errors()).body(), status_code=422)

    async def read_json(headers: Mapping[str, str], receive: Receive, ctx: Context) -> bytes:
        """The body, after the content-type and size checks (`headers`: see `_headers`)."""
        content_type = headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise GatewayError(
                415,
                "unsupported_media_type",
                f"content type must be application/json, got {content_type or 'none'!r}",
                "Content-Type",
            )
        limit = ctx.policy.gateway.max_body_bytes
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        return await _read_body(receive, limit)

    async def accept_trigger(
        ctx: Context, intake: EmergencyIntake, *, source: str, dedup_key: str, is_drill: bool
    ) -> _Accepted:
        """Commit the delivery (group commit, see group_commit.py), then dispatch a new one."""
        request = service.IntakeRequest(intake, source, dedup_key, f"gateway:{source}", is_drill)
        try:
            result = await writer.open(ctx, request)
        except DomainError as exc:
            raise GatewayError(422, "invalid", str(exc), exc.field) from None
        dispatched = False
        status = result.status
        if intake_process:  # the child pages and dispatches what it opened
            pass
        elif result.created:
            done = dispatch_queue.submit(result.emergency_id, actor=f"gateway:{source}")
            if not background_dispatch:
                outcome = await asyncio.wrap_future(done)
                dispatched = outcome.dispatched
            status = "dispatched" if dispatched else status
        elif result.send_now:  # a raised level: its page is written, sent from the thread
            sent = dispatch_queue.send_now(list(result.send_now))
            if not background_dispatch:
                await asyncio.wrap_future(sent)
        return _Accepted(
            result.emergency_id, result.created, status, result.level, dispatched, result.is_drill
        )

    def persist_action(ctx: Context, *, source: str, dedup_key: str, action: str) -> ActionResult:
        with unit_of_work(engine) as session:
            st = service.act_on_dedup(
                session,
                ctx,
                source=source,
                dedup_key=dedup_key,
                action=action,
                actor=f"gateway:{source}",
            )
        return ActionResult(emergency_id=st.public_id, status=st.status.value)

    async def in_thread(fn, *args, **kwargs):
        try:
            return await run_in_threadpool(fn, *args, **kwargs)
        except NotFound as exc:
            raise GatewayError(404, "not_found", str(exc), exc.field) from None
        except DomainError as exc:
            raise GatewayError(422, "invalid", str(exc), exc.field) from None

    # --- native ---------------------------------------------------------

    async def native_checked(
        source: str, headers: Mapping[str, str], receive: Receive
    ) -> tuple[Context, bytes]:
        ctx = ctx_factory()
        native = ctx.policy.gateway.native
        if source not in native.sources:
            raise GatewayError(
                404,
                "unknown_source",
                f"unknown source {source!r}",
                "source",
                [{"field": "source", "message": "allowed: " + ", ".join(sorted(native.sources))}],
            )
        body = await read_json(headers, receive, ctx)
        auth.verify_signature(
            secret=env.get(auth.secret_env_name(native.secret_env_prefix, source)),
            timestamp=headers.get(auth.TIMESTAMP_HEADER_KEY),
            signature=headers.get(auth.SIGNATURE_HEADER_KEY),
            body=body,
            now=ctx.now(),
            window_seconds=ctx.policy.gateway.replay_window_seconds,
        )
        return ctx, body

    async def native_intake(source: str, headers: Mapping[str, str], receive: Receive) -> bytes:
        """A native trigger, checked and committed: the 202's JSON body. Raises GatewayError."""
        ctx, body = await native_checked(source, headers, receive)
        trigger = _parse(body, NativeTrigger)
        values = {name: getattr(trigger, name) for name in EmergencyIntake.model_fields}
        # The trigger is an EmergencyIntake validated with the same validators, and the
        # default working group is validated as one when the policy loads: copy, don't
        # validate a third time (a tenth of a millisecond per webhook).
        values["working_group"] = (
            trigger.working_group or ctx.policy.gateway.native.sources[source].default_working_group
        )
        accepted = await accept_trigger(
            ctx,
            EmergencyIntake.model_construct(**values),
            source=source,
            dedup_key=trigger.dedup_key,
            is_drill=trigger.drill,
        )
        return accepted.json()

    # The hot path without the framework's per-request machinery (see `_NativeFastPath`);
    # the route below documents it and serves the requests the fast path leaves to it.
    app.native_fast_path = _NativeFastPath(native_intake)

    @app.post(
        "/v1/emergencies/{source}",
        status_code=202,
        response_model=Accepted,
        responses=ERRORS,
        openapi_extra=_request_body(NativeTrigger),
        summary="Open an emergency (native, HMAC-signed)",
        description="Headers: X-Taskforce-Timestamp (Unix seconds) and X-Taskforce-Signature "
        "(sha256=<hex HMAC-SHA256 of '<timestamp>.<body>' with TASKFORCE_WEBHOOK_SECRET_<SOURCE>>).",
    )
    async def native_trigger(request: Request, source: str) -> Accepted:
        body = await native_intake(source, _headers(request.scope), request.receive)
        # Already a valid Accepted: skip FastAPI's validation of the return value.
        return _json_response(body, 202)  # type: ignore[return-value]

    def native_action_endpoint(action: str):
        async def native_action(request: Request, source: str) -> ActionResult:
            ctx, body = await native_checked(source, _headers(request.scope), request.receive)
            parsed = _parse(body, NativeAction)
            return await in_thread(
                persist_action, ctx, source=source, dedup_key=parsed.dedup_key, action=action
            )

        return native_action

    for action in ("acknowledge", "resolve"):
        app.post(
            f"/v1/emergencies/{{source}}/{action}",
            status_code=200,
            response_model=ActionResult,
            responses=ERRORS,
            openapi_extra=_request_body(NativeAction),
            summary=f"{action.capitalize()} the open emergency of a dedup key (native, HMAC-signed)",
            name=f"native_{action}",
            operation_id=f"native_{action}",
        )(native_action_endpoint(action))

    # --- Alertmanager ---------------------------------------------------

    @app.post(
        "/v1/alertmanager",
        status_code=202,
        response_model=AlertmanagerAccepted,
        responses=ERRORS,
        openapi_extra=_request_body(AlertmanagerWebhook),
        summary="Prometheus Alertmanager receiver (webhook payload version 4, bearer token)",
    )
    async def alertmanager(request: Request) -> AlertmanagerAccepted:
        ctx = ctx_factory()
        policy = ctx.policy.gateway.alertmanager
        body = await read_json(_headers(request.scope), request.receive, ctx)
        auth.verify_bearer(
            request.headers.get("authorization"), env_name=policy.token_env, environ=env
        )
        hook = _parse(body, AlertmanagerWebhook)
        # Each alert is taken or refused on its own: Alertmanager does not retry a 4xx, and
        # it groups alerts (by alertname, cluster…), so refusing a batch for one alert with
        # a bad label silenced every other alert grouped with it, again at every flush.
        taken: list[tuple[int, str, EmergencyIntake | None]] = []  # None: a resolved alert
        refused: dict[int, list[dict]] = {}
        wg_fields: dict[int, str] = {}  # the working-group field of each firing alert
        for i, alert in enumerate(hook.alerts):
            if alert.status == "resolved":
                taken.append((i, alert.fingerprint, None))
                continue
            value = alert.labels.get(policy.level_label) or hook.commonLabels.get(
                policy.level_label
            )
            level = policy.levels.get(value or "")
            if level is None:
                refused[i] = [
                    {
                        "field": f"alerts.{i}.labels.{policy.level_label}",
                        "message": (
                            f"unknown level {value[:80]!r}"
                            if value
                            else f"no {policy.level_label} label"
                        )
                        + "; allowed: "
                        + ", ".join(sorted(policy.levels)),
                    }
                ]
                continue
            annotations = {**hook.commonAnnotations, **alert.annotations}
            labels = {**hook.commonLabels, **alert.labels}
            # The title comes from the summary annotation, else the alert's name: a problem
            # with it is named where the sender wrote it.
            if annotations.get("summary"):
                title, title_field = annotations["summary"], f"alerts.{i}.annotations.summary"
            elif labels.get("alertname"):
                title, title_field = labels["alertname"], f"alerts.{i}.labels.alertname"
            else:
                title, title_field = f"alert {alert.fingerprint}", f"alerts.{i}.fingerprint"
            try:
                intake = _intake(
                    {
                        "level": Level(level),
                        "title": title[:300],
                        "description": annotations.get("description", "")[:20_000],
                        "working_group": labels.get(policy.working_group_label)
                        or policy.default_working_group,
                        "details": {
                            "labels": labels,
                            "generatorURL": alert.generatorURL,
                            "startsAt": alert.startsAt,
                            "receiver": hook.receiver,
                        },
                    },
                    {
                        "title": title_field,
                        "description": f"alerts.{i}.annotations.description",
                        "working_group": f"alerts.{i}.labels.{policy.working_group_label}",
                        "details": f"alerts.{i}",
                    },
                )
            except GatewayError as exc:
                refused[i] = exc.problems
                continue
            taken.append((i, alert.fingerprint, intake))
            wg_fields[i] = f"alerts.{i}.labels.{policy.working_group_label}"
        # Every firing alert is checked against the organisation before any is written: an
        # alert refused must have opened (and paged) nothing.
        firing = [(i, key, intake) for i, key, intake in taken if intake is not None]
        refused |= await run_in_threadpool(refused_intakes, ctx, policy.source, firing, wg_fields)
        taken = [entry for entry in taken if entry[0] not in refused]
        if not taken:  # nothing to take: a 4xx that writes nothing, as for any bad request
            _log_refused(hook, refused, others_taken=False)
            problems = [p for i in sorted(refused) for p in refused[i]]
            raise GatewayError(
                422,
                "invalid_body",
                "; ".join(f"{p['field']}: {p['message']}" for p in problems),
                problems[0]["field"],
                problems,
            )
        results = await _alertmanager_batch(ctx, policy.source, taken, refused)
        _log_refused(hook, refused, others_taken=True)
        for i, problems in refused.items():
            results[i] = AlertResult(
                fingerprint=hook.alerts[i].fingerprint,
                emergency_id=None,
                outcome="refused",
                problems=[Problem(**p) for p in problems],
            )
        return AlertmanagerAccepted(results=[results[i] for i in range(len(hook.alerts))])

    def refused_intakes(
        ctx: Context,
        source: str,
        intakes: list[tuple[int, str, EmergencyIntake]],
        fields: dict[int, str],
    ) -> dict[int, list[dict]]:
        """The problems of the intakes the organisation cannot take, by alert and the
        sender's field, as `open_emergency` judges them: a delivery for a key already open
        attaches unchecked. Queued on the process's write lock as the dispatch thread's
        transactions are (an SQLite transaction takes the database's write lock, which the
        intake holds)."""
        problems: dict[int, list[dict]] = {}
        with group_commit.write_lock, unit_of_work(engine) as session:
            for i, key, intake in intakes:
                if service.find_open(session, source, key) is not None:
                    continue
                try:
                    service.validate_intake(session, ctx, intake)
                except DomainError as exc:
                    reason = str(exc).split(": ", 1)[-1]
                    problems[i] = [{"field": fields[i], "message": reason}]
        return problems

    def resolve_alert(ctx: Context, source: str, fingerprint: str) -> AlertResult:
        with unit_of_work(engine) as session:
            open_one = service.find_open(session, source, fingerprint)
            if open_one is None:
                return AlertResult(fingerprint=fingerprint, emergency_id=None, outcome="not_open")
            st = service.resolve(session, ctx, open_one.public_id, actor=f"gateway:{source}")
        return AlertResult(
            fingerprint=fingerprint,
            emergency_id=st.public_id,
            outcome="resolved",
            status=st.status.value,
        )

    async def _alertmanager_batch(
        ctx: Context,
        source: str,
        taken: list[tuple[int, str, EmergencyIntake | None]],
        refused: dict[int, list[dict]],
    ) -> dict[int, AlertResult]:
        """Each alert written on its own; one refused at its write (the organisation changed
        since the check) joins `refused`, and the others are still taken."""
        out: dict[int, AlertResult] = {}
        for i, fingerprint, intake in taken:
            if intake is None:
                out[i] = await in_thread(resolve_alert, ctx, source, fingerprint)
                continue
            try:
                accepted = await accept_trigger(
                    ctx, intake, source=source, dedup_key=fingerprint, is_drill=False
                )
            except GatewayError as exc:
                if exc.status != 422:
                    raise
                refused[i] = exc.problems or [
                    {"field": f"alerts.{i}.{exc.field or 'labels'}", "message": exc.message}
                ]
                continue
            out[i] = AlertResult(
                fingerprint=fingerprint,
                emergency_id=accepted.emergency_id,
                outcome="opened" if accepted.created else "repeat",
                status=accepted.status,
            )
        return out

    # --- PagerDuty ------------------------------------------------------

    @app.post(
        "/v2/enqueue",
        status_code=202,
        response_model=PagerDutyAccepted,
        responses=ERRORS,
        openapi_extra=_request_body(PagerDutyEvent),
        summary="PagerDuty Events API v2-compatible endpoint (routing_key)",
    )
    async def pagerduty(request: Request) -> PagerDutyAccepted:
        ctx = ctx_factory()
        policy = ctx.policy.gateway.pagerduty
        body = await read_json(_headers(request.scope), request.receive, ctx)
        raw = _json(body)
        # Authenticate before describing the body's problems to the sender.
        routing_key = raw.get("routing_key") if isinstance(raw, dict) else None
        if not isinstance(routing_key, str) or not routing_key:
            raise GatewayError(401, "missing_routing_key", "routing_key is required", "routing_key")
        auth.verify_routing_key(routing_key, env_name=policy.routing_key_env, environ=env)
        event = _validate(raw, PagerDutyEvent)
        if event.event_action == "trigger":
            if event.payload is None:
                raise GatewayError(
                    422, "invalid_body", "payload is required for trigger", "payload"
                )
            dedup_key = event.dedup_key or str(uuid.uuid4())
            details = event.payload.custom_details
            intake = _intake(
                {
                    "level": Level(policy.levels[event.payload.severity]),
                    "title": event.payload.summary[:300],
                    "working_group": policy.default_working_group,
                    "details": {
                        "source": event.payload.source,
                        "severity": event.payload.severity,
                        "component": event.payload.component,
                        "group": event.payload.group,
                        "custom_details": details,
                    },
                },
                {"title": "payload.summary", "details": "payload"},
            )
            accepted = await accept_trigger(
                ctx, intake, source=policy.source, dedup_key=dedup_key, is_drill=False
            )
            return PagerDutyAccepted(
                message="Event processed", dedup_key=dedup_key, emergency_id=accepted.emergency_id
            )
        if not event.dedup_key:
            raise GatewayError(
                422, "invalid_body", f"dedup_key is required for {event.event_action}", "dedup_key"
            )
        result = await in_thread(
            persist_action,
            ctx,
            source=policy.source,
            dedup_key=event.dedup_key,
            action=event.event_action,
        )
        return PagerDutyAccepted(
            message="Event processed", dedup_key=event.dedup_key, emergency_id=result.emergency_id
        )

    @app.get("/healthz", summary="Liveness and database check")
    async def healthz() -> dict[str, str]:
        def ping() -> None:
            with unit_of_work(engine) as session:
                session.execute(text("SELECT 1"))

        await run_in_threadpool(ping)
        return {"status": "ok"}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (NativeTrigger, NativeAction, AlertmanagerWebhook, PagerDutyEvent):
            model_schema = model.model_json_schema(ref_template=REF_TEMPLATE)
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


REF_TEMPLATE = "#/components/schemas/{model}"
NATIVE_PREFIX = "/v1/emergencies/"


class GatewayApp(FastAPI):
    """The gateway's app: `POST /v1/emergencies/{source}` goes to `native_fast_path`, outside
    every middleware; everything else through FastAPI as usual."""

    native_fast_path: _NativeFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.native_fast_path
        if fast is not None and (source := fast.source_of(scope)) is not None:
            await fast.serve(source, scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class _NativeFastPath:
    """`POST /v1/emergencies/{source}` served straight from ASGI, before FastAPI.

    Why: the framework's middleware (server errors, FastAPI's OpenTelemetry check, which reads
    the environment on every request), routing and dependency solving cost about a fifth of
    the event loop's time for an intake request (benchmarks/RESULTS.md, sessions 19 and 20).
    This does what the route does with the same function (`native_intake`), the same
    responses and the same errors: a GatewayError answers its JSON body, anything else
    answers 500 "Internal Server Error" and is raised to the server, which logs it (as
    Starlette's ServerErrorMiddleware does for the route). Every other request, and a path
    the router would treat differently (a root path, a slash in the source), goes to the
    app unchanged.
    """

    def __init__(self, intake: Callable[..., Any]) -> None:
        self.intake = intake

    @staticmethod
    def source_of(scope: Scope) -> str | None:
        """The source a request for the fast path names, or None to leave it to the app."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            return None
        path = scope["path"]
        if not path.startswith(NATIVE_PREFIX):
            return None
        source = path[len(NATIVE_PREFIX) :]
        return source if source and "/" not in source else None

    async def serve(self, source: str, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            try:
                body = await self.intake(source, _headers(scope), receive)
            except GatewayError as exc:
                await JSONResponse(exc.body(), status_code=exc.status)(scope, receive, sending)
                return
            # What `_json_response(body, 202)` sends, without building a Response (tested).
            await sending(
                {
                    "type": "http.response.start",
                    "status": 202,
                    "headers": [
                        (b"content-length", str(len(body)).encode()),
                        (b"content-type", b"application/json"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        except ClientDisconnect:
            return  # the sender hung up before its body was read: nothing written, nobody to answer
        except Exception:
            if not started:
                await PlainTextResponse("Internal Server Error", status_code=500)(
                    scope, receive, send
                )
            raise


class _Accepted(NamedTuple):
    """What `Accepted` answers, without a model's validation on the hot path."""

    emergency_id: str
    created: bool
    status: str
    level: Level
    dispatched: bool
    is_drill: bool

    def json(self) -> bytes:
        """Byte for byte `JSONResponse(Accepted(...).model_dump(mode="json")).body` (tested)."""
        return (
            f'{{"emergency_id":{_json_str(self.emergency_id)},'
            f'"created":{"true" if self.created else "false"},'
            f'"status":{_json_str(self.status)},"level":{_json_str(self.level.value)},'
            f'"dispatched":{"true" if self.dispatched else "false"},'
            f'"is_drill":{"true" if self.is_drill else "false"}}}'
        ).encode()


# json's own string encoder for ensure_ascii=False, as JSONResponse renders strings.
_json_str = json.encoder.encode_basestring


def _json_response(body: bytes, status: int) -> Response:
    """A JSONResponse of an already rendered body (same headers)."""
    return Response(body, status_code=status, media_type=JSONResponse.media_type)


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers by lower-case name, the first of repeated ones, as Starlette's
    `request.headers.get` finds them (ASGI servers send lower-case names)."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The request body, refused past `limit` bytes as it arrives (Starlette's
    `request.stream()` without the async generator)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


def _request_body(model: type[BaseModel]) -> dict:
    """Document a body that the endpoint reads raw (to verify signatures over the exact bytes)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": REF_TEMPLATE.format(model=model.__name__)}}
            },
        }
    }


def _too_large(limit: int) -> GatewayError:
    return GatewayError(413, "body_too_large", f"the body exceeds {limit} bytes", "body")


# How deep a body's objects and arrays may nest. No sender's payload nests more than a few
# levels; a deeper one (a few KB of "[[[[…") made json.loads raise RecursionError (a 500), and
# just below Python's limit it would reach the database's JSON columns through `details`.
MAX_JSON_DEPTH = 32


def _too_deep() -> GatewayError:
    return GatewayError(
        422,
        "invalid_body",
        f"body: objects and arrays nest more than {MAX_JSON_DEPTH} levels deep",
        "body",
    )


def _depth_over(value: Any, limit: int) -> bool:
    """Whether objects and arrays in `value` nest more than `limit` levels (iterative)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)
    return False


def _not_a_number(token: str) -> Any:
    # Python's json reads NaN and Infinity, which are not JSON (RFC 8259) and which no
    # database JSON column takes: PostgreSQL refused the row, a 500 a sender retries forever.
    raise GatewayError(
        400,
        "malformed_json",
        f"the body is not valid JSON: {token} is not a JSON number (RFC 8259)",
        "body",
    )


def _finite(text: str) -> float:
    # 1e999 is a valid JSON number that no double holds: float() makes it inf, which the
    # JSON columns refuse as they refuse Infinity.
    value = float(text)
    if not math.isfinite(value):
        raise GatewayError(
            400,
            "malformed_json",
            f"the body is not valid JSON here: {text} is beyond the range of a double",
            "body",
        )
    return value


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python's json keeps the last of two equal names and drops the first without a word:
    # {"level": "I", "level": "III"} opened a level-III emergency. RFC 8259 leaves such an
    # object's meaning to the reader, so the sender is told instead (about 1.5 µs a body).
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        name = next(name for name, _ in pairs if name in seen or seen.add(name))
        shown = name if len(name) <= 80 else f"{name[:80]}…"
        raise GatewayError(
            400,
            "malformed_json",
            f"the body is ambiguous JSON: the name {json.dumps(shown, ensure_ascii=False)} "
            "appears twice in one object (names must be unique, RFC 8259 §4)",
            "body",
        )
    return obj


# One decoder, made once: json.loads with a keyword argument builds a decoder per call.
_DECODER = json.JSONDecoder(
    parse_constant=_not_a_number, parse_float=_finite, object_pairs_hook=_unique_names
)


def _json(body: bytes) -> Any:
    try:
        # What json.loads does with bytes (UTF-8, -16 or -32), with the decoder above.
        raw = _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GatewayError(
            400, "malformed_json", f"the body is not valid JSON: {exc}", "body"
        ) from None
    except RecursionError:
        raise _too_deep() from None
    except ValueError:  # json.loads("1" * 5000): Python's limit on an integer's digits
        raise GatewayError(
            400,
            "malformed_json",
            f"the body holds a number of more than {sys.get_int_max_str_digits()} digits",
            "body",
        ) from None
    # Counting brackets is a C-speed scan; only a body with more of them than the limit can
    # nest that deep. The walk then visits each container once (an Alertmanager batch of a
    # dozen alerts has more than 32 brackets: a walk of microseconds).
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and _depth_over(raw, MAX_JSON_DEPTH):
        raise _too_deep()
    # In UTF-8 JSON a NUL can only be the escape \u0000 (a raw control character is
    # invalid); UTF-16/32 bodies (which json.loads accepts) have NUL bytes. Without either
    # there is nothing to search for.
    if (b"\\u0000" in body or b"\x00" in body) and (where := nul_path(raw)) is not None:
        # Valid JSON, but no database text column (PostgreSQL) can hold a NUL character.
        raise GatewayError(
            422,
            "invalid_body",
            f"{where or 'body'}: must not contain NUL (\\u0000)",
            where or "body",
        )
    return raw


def _log_refused(
    hook: AlertmanagerWebhook, refused: dict[int, list[dict]], *, others_taken: bool
) -> None:
    """Alertmanager does not read the answer (nor retry a 4xx): the gateway's log is where
    a refused alert shows, whatever became of its batch."""
    what = "the others of its batch were taken" if others_taken else "nothing of its batch taken"
    for i, problems in sorted(refused.items()):
        log.warning(
            "alertmanager alert %s refused (%s): %s",
            hook.alerts[i].fingerprint,
            what,
            "; ".join(f"{p['field']}: {p['message']}" for p in problems),
        )


def _intake(values: dict, fields: dict[str, str]) -> EmergencyIntake:
    """An intake built from a sender's payload; its problems are named by the sender's fields."""
    try:
        return EmergencyIntake.model_validate(values)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            if loc and loc[0] in fields:
                loc = [fields[loc[0]], *loc[1:]]
            elif not loc:
                loc = [fields.get("details", "body")]
            errors.append({**err, "loc": tuple(loc)})
        raise _invalid(errors) from None


def _validate(raw: Any, model: type[M]) -> M:
    """`raw` from `_json`, which has searched it for NUL already (see NativeTrigger)."""
    try:
        return model.model_validate(raw, context=NUL_CHECKED)
    except ValidationError as exc:
        raise _invalid(exc.errors()) from None


def _parse(body: bytes, model: type[M]) -> M:
    return _validate(_json(body), model)


# How a refused value that is not a scalar is named (it read "unknown value this value").
_JSON_KINDS = {type(None): "null", list: "an array", dict: "an object"}


def _invalid(errors, *, prefix: str | None = None) -> GatewayError:
    problems = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        if prefix:
            loc.insert(0, prefix)
        field = ".".join(loc) or "body"
        kind = err.get("type", "")
        message = {
            "missing": "field required",
            "extra_forbidden": "unknown field",
        }.get(kind) or (problem_text(err) if "msg" in err else "invalid")
        ctx = err.get("ctx") or {}
        if "expected" in ctx:
            # Enums and literals: name the value sent and the values allowed.
            sent = err.get("input")
            shown = (
                repr(sent)
                if isinstance(sent, str | int | float | bool)
                else _JSON_KINDS.get(type(sent), "this value")
            )
            message = f"unknown value {shown[:80]} (allowed: {ctx['expected']})"
        problems.append({"field": field, "message": message})
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return GatewayError(
        422,
        "invalid_body",
        summary or "invalid body",
        problems[0]["field"] if problems else None,
        problems,
    )
