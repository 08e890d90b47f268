"""Real HTTP requests to the gateway (uvicorn on 127.0.0.1) for every endpoint, auth method
and bad input. Every refused request writes nothing."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx
import pytest
from sqlalchemy import func, select

from benchmarks.loopback import Receiver, make_config
from taskforce.db import unit_of_work
from taskforce.emergency.models import Emergency, EmergencyEvent, EmergencyStatus
from taskforce.notify.models import DeliveryStatus, OutboxMessage
from taskforce.trail.models import TrailEntry
from tests.gateway.server import ROUTING_KEY, TOKEN

NATIVE = "/v1/emergencies/monitoring"
TRIGGER = {"dedup_key": "disk-full-db1", "level": "II", "title": "数据库磁盘将满"}


def _now(ctx) -> int:
    return int(ctx.now().timestamp())


def _count(engine, model, *where) -> int:
    with unit_of_work(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def _nothing_written(engine) -> None:
    assert _count(engine, Emergency) == 0
    assert _count(engine, TrailEntry) == 0
    assert _count(engine, OutboxMessage) == 0


def _pages(engine) -> list[str]:
    with unit_of_work(engine) as s:
        return list(
            s.scalars(
                select(OutboxMessage.audience)
                .where(OutboxMessage.event_kind == "emergency_page")
                .order_by(OutboxMessage.id)
            )
        )


def _error(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    if field is not None:
        assert error["field"] == field, error
    assert error["message"]
    return error


# --- native -----------------------------------------------------------------


def test_native_trigger_persists_then_acknowledges(gateway, engine, ctx):
    r = gateway.signed(NATIVE, TRIGGER, timestamp=_now(ctx))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["created"] and body["level"] == "II" and not body["dispatched"]
    assert body["status"] == "pending_dispatch"
    with unit_of_work(engine) as s:
        e = s.scalars(select(Emergency)).one()
        assert e.public_id == body["emergency_id"] and e.source == "monitoring"
        assert e.working_group == "wg:data"  # the source's default from config
    # Prefect is unreachable here: the executive group's on-call was paged directly.
    assert _pages(engine) == ["member-E1", "member-E2"]

    again = gateway.signed(NATIVE, TRIGGER, timestamp=_now(ctx))
    assert again.status_code == 202 and not again.json()["created"]
    assert again.json()["emergency_id"] == body["emergency_id"]
    assert _pages(engine) == ["member-E1", "member-E2"]

    ack = gateway.signed(
        NATIVE + "/acknowledge", {"dedup_key": TRIGGER["dedup_key"]}, timestamp=_now(ctx)
    )
    assert ack.status_code == 200 and ack.json()["status"] == "acknowledged"
    res = gateway.signed(
        NATIVE + "/resolve", {"dedup_key": TRIGGER["dedup_key"]}, timestamp=_now(ctx)
    )
    assert res.status_code == 200 and res.json()["status"] == "resolved"
    gone = gateway.signed(
        NATIVE + "/resolve", {"dedup_key": TRIGGER["dedup_key"]}, timestamp=_now(ctx)
    )
    _error(gone, 404, "not_found", "dedup_key")


def test_a_repeat_reporting_level_i_raises_the_emergency_over_http(gateway, engine, ctx):
    first = gateway.signed(NATIVE, {**TRIGGER, "level": "III"}, timestamp=_now(ctx))
    assert first.status_code == 202 and first.json()["level"] == "III"
    assert _pages(engine) == ["member-W3"]
    worse = {**TRIGGER, "level": "I", "title": "数据库集群全部宕机"}
    raised = gateway.signed(NATIVE, worse, timestamp=_now(ctx))
    assert raised.status_code == 202, raised.text
    body = raised.json()
    assert not body["created"] and body["level"] == "I"
    assert body["emergency_id"] == first.json()["emergency_id"]
    assert _pages(engine) == ["member-W3", *[f"member-L{i}" for i in range(1, 8)]]
    with unit_of_work(engine) as s:
        e = s.scalars(select(Emergency)).one()
        assert (e.level.value, e.leading_group) == ("I", "leadership")


def test_a_raised_emergencys_page_reaches_the_receiver_before_the_answer(
    start_gateway, engine, ctx, tmp_path, monkeypatch
):
    """The raise's page and escalation notice were written and left for the next delivery
    run (up to a minute): a level-I crisis waited for its leadership page. They are sent at
    once, as a first page is."""
    receiver = Receiver()
    monkeypatch.setenv("TASKFORCE_CONFIG_DIR", str(make_config(tmp_path, receiver.url, {})))
    gateway = start_gateway(ctx)
    try:
        first = gateway.signed(NATIVE, {**TRIGGER, "level": "III"}, timestamp=_now(ctx))
        public_id = first.json()["emergency_id"]
        worse = {**TRIGGER, "level": "I", "title": "数据库集群全部宕机"}
        raised = gateway.signed(NATIVE, worse, timestamp=_now(ctx))
        answered = time.perf_counter()
        assert raised.status_code == 202 and raised.json()["level"] == "I", raised.text
        pages = receiver.deliveries(f"emergency:{public_id}:page")
        assert len(pages) == 1 + 7  # the working group's first page, then the 7 leaders
        assert all(p.at < answered for p in pages)
        notices = receiver.deliveries("emergency_escalated")
        assert len(notices) == 2 and all(m.at < answered for m in notices)  # leadership, director
    finally:
        receiver.stop()
    with unit_of_work(engine) as s:
        left = s.scalars(
            select(OutboxMessage.idempotency_key).where(
                OutboxMessage.event_kind.in_(["emergency_page", "emergency_escalated"]),
                OutboxMessage.status == DeliveryStatus.pending,
            )
        ).all()
    assert left == []  # none left for the delivery run


def test_native_drill_is_marked(gateway, engine, ctx):
    r = gateway.signed(NATIVE, {**TRIGGER, "drill": True}, timestamp=_now(ctx))
    assert r.status_code == 202 and r.json()["is_drill"]
    with unit_of_work(engine) as s:
        assert s.scalars(select(Emergency.is_drill)).one()
        assert all(s.scalars(select(OutboxMessage.is_drill)))


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"drop": "title"}, 422, "invalid_body", "title"),
        ({"drop": "dedup_key"}, 422, "invalid_body", "dedup_key"),
        ({"set": {"colour": "red"}}, 422, "invalid_body", "colour"),
        ({"set": {"level": "IV"}}, 422, "invalid_body", "level"),
        ({"set": {"level": "III", "working_group": "wg:none"}}, 422, "invalid", "working_group"),
        ({"set": {"classification": "top-secret"}}, 422, "invalid_body", "classification"),
        ({"set": {"title": "a\x00b"}}, 422, "invalid_body", "title"),  # found by schemathesis
        ({"set": {"details": {"k": ["\x00"]}}}, 422, "invalid_body", "details.k.0"),
    ],
)
def test_native_bad_fields(gateway, engine, ctx, change, status, code, field):
    payload = dict(TRIGGER)
    payload.pop(change.get("drop", ""), None)
    payload.update(change.get("set", {}))
    error = _error(gateway.signed(NATIVE, payload, timestamp=_now(ctx)), status, code, field)
    if field == "level":
        assert error["message"] == "level: unknown value 'IV' (allowed: 'I', 'II' or 'III')"
    _nothing_written(engine)


def test_an_alerts_invisible_characters_are_dropped_not_refused(gateway, engine, ctx):
    """An operator trial: a title with a right-to-left override, a line break and a BEL was
    stored and paged as is (`emergency list` rang the terminal and read backwards). An
    alert must still open an emergency: they are dropped, the line break a space."""
    payload = {**TRIGGER, "title": "告警\u202e反转\n第二行\u0007", "description": "a\u202eb\nc"}
    r = gateway.signed(NATIVE, payload, timestamp=_now(ctx))
    assert r.status_code == 202, r.text
    with unit_of_work(engine) as s:
        title, description = s.execute(select(Emergency.title, Emergency.description)).one()
    assert (title, description) == ("告警反转 第二行", "ab\nc")
    # Nothing visible is left: refused, as an empty title is.
    blank = {**TRIGGER, "dedup_key": "blank", "title": "\u202e\u200b\u200b\u0007"}
    error = _error(gateway.signed(NATIVE, blank, timestamp=_now(ctx)), 422, "invalid_body", "title")
    # In the gateway's words, not pydantic's ("title: Value error, …": a re-trial).
    assert error["message"] == "title: must not be empty (it has no visible character)", error


def test_native_malformed_json(gateway, engine, ctx):
    _error(gateway.signed(NATIVE, b'{"level": "I",', timestamp=_now(ctx)), 400, "malformed_json")
    _error(gateway.signed(NATIVE, b"[1, 2]", timestamp=_now(ctx)), 422, "invalid_body")
    _nothing_written(engine)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_a_number_json_does_not_have_is_refused_not_a_server_error(gateway, engine, ctx, token):
    """Python's json reads NaN and Infinity, and makes 1e999 inf; PostgreSQL's JSON columns
    take none of them: a 500 made the sender retry forever. Found by an operator trial (and
    1e999 by a review)."""
    body = (
        '{"dedup_key": "m14", "level": "III", "title": "nan", "working_group": "wg:data", '
        f'"details": {{"v": {token}}}}}'
    ).encode()
    error = _error(gateway.signed(NATIVE, body, timestamp=_now(ctx)), 400, "malformed_json", "body")
    if "e" in token:  # a valid JSON number beyond a double's range: float() made it inf
        assert f"{token} is beyond the range of a double" in error["message"]
    else:
        assert f"{token.lstrip('-')} is not a JSON number" in error["message"]
    _nothing_written(engine)


def test_a_number_of_more_digits_than_python_reads_is_refused_not_a_server_error(
    gateway, engine, ctx
):
    """An operator trial: a signed webhook with a 5,000-digit integer in its details made
    json.loads raise ValueError (Python's 4,300-digit limit): a 500 and a traceback in the
    gateway's terminal. On the native path and the framework's routes alike."""
    digits = "1" * (sys.get_int_max_str_digits() + 700)
    body = (
        '{"dedup_key": "big", "level": "III", "title": "大数", "working_group": "wg:data", '
        f'"details": {{"n": {digits}}}}}'
    ).encode()
    error = _error(gateway.signed(NATIVE, body, timestamp=_now(ctx)), 400, "malformed_json", "body")
    limit = sys.get_int_max_str_digits()  # 4300 unless PYTHONINTMAXSTRDIGITS says otherwise
    assert error["message"] == f"the body holds a number of more than {limit} digits"
    am = gateway.client.post(
        "/v1/alertmanager",
        content=f'{{"version": "4", "status": "firing", "alerts": [], "n": {digits}}}'.encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert am.status_code == 400 and am.json()["error"]["code"] == "malformed_json"
    _nothing_written(engine)


def test_a_null_where_a_value_is_chosen_from_a_list_is_named_null(gateway, engine, ctx):
    """It read "level: unknown value this value" (an operator trial)."""
    payload = {**TRIGGER, "level": None}
    error = _error(gateway.signed(NATIVE, payload, timestamp=_now(ctx)), 422, "invalid_body")
    assert error["message"] == "level: unknown value null (allowed: 'I', 'II' or 'III')"
    payload = {**TRIGGER, "level": ["I"]}
    error = _error(gateway.signed(NATIVE, payload, timestamp=_now(ctx)), 422, "invalid_body")
    assert error["message"] == "level: unknown value an array (allowed: 'I', 'II' or 'III')"
    _nothing_written(engine)


@pytest.mark.parametrize(
    ("body", "name"),
    [
        # Python's json kept the last: this opened a level-III emergency.
        (
            '{"dedup_key": "d1", "level": "I", "title": "dup names", "level": "III", '
            '"working_group": "wg:data"}',
            "level",
        ),
        (
            '{"dedup_key": "d2", "level": "III", "title": "dup names", "working_group": "wg:data", '
            '"details": {"主机": "a", "n": 1, "主机": "b"}}',
            "主机",
        ),
    ],
)
def test_a_name_given_twice_is_refused_not_the_last_taken(gateway, engine, ctx, body, name):
    error = _error(
        gateway.signed(NATIVE, body.encode(), timestamp=_now(ctx)), 400, "malformed_json", "body"
    )
    assert f'the name "{name}" appears twice in one object' in error["message"]
    _nothing_written(engine)


def test_native_wrong_content_type(gateway, engine, ctx):
    r = gateway.signed(NATIVE, TRIGGER, timestamp=_now(ctx), headers={"Content-Type": "text/plain"})
    _error(r, 415, "unsupported_media_type", "Content-Type")
    _nothing_written(engine)


def test_native_body_over_the_limit(gateway, engine, ctx):
    limit = ctx.policy.gateway.max_body_bytes
    big = {**TRIGGER, "description": "x" * limit}
    _error(gateway.signed(NATIVE, big, timestamp=_now(ctx)), 413, "body_too_large")
    # Exactly at the limit is accepted (as far as size goes).
    body = json.dumps({**TRIGGER, "description": ""}).encode()
    filler = limit - len(body)
    at_limit = json.dumps({**TRIGGER, "description": "y" * filler}).encode()
    assert len(at_limit) == limit
    r = gateway.signed(NATIVE, at_limit, timestamp=_now(ctx))
    _error(r, 422, "invalid_body", "description")  # over the field's own 20,000 chars

    # Chunked upload without a Content-Length is cut off too.
    def chunks():
        for _ in range(limit // 1024 + 2):
            yield b" " * 1024

    r = gateway.client.post(NATIVE, content=chunks(), headers={"Content-Type": "application/json"})
    _error(r, 413, "body_too_large")
    _nothing_written(engine)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"X-Taskforce-Signature": "sha256=" + "0" * 64}, "bad_signature"),
        ({"X-Taskforce-Signature": ""}, "missing_signature"),
        ({"X-Taskforce-Timestamp": ""}, "missing_timestamp"),
        ({"X-Taskforce-Timestamp": "yesterday"}, "bad_timestamp"),
    ],
)
def test_native_bad_signature(gateway, engine, ctx, headers, code):
    r = gateway.signed(NATIVE, TRIGGER, timestamp=_now(ctx), headers=headers)
    _error(r, 401, code)
    _nothing_written(engine)


def test_native_signed_with_another_secret(gateway, engine, ctx):
    r = gateway.signed(NATIVE, TRIGGER, timestamp=_now(ctx), secret="wrong")
    _error(r, 401, "bad_signature", "X-Taskforce-Signature")
    _nothing_written(engine)


def test_native_replay_window(gateway, engine, ctx):
    # On a whole second: a signed timestamp is whole seconds, and the boundary (exactly the
    # window old, accepted) is then exact (the tests' clock reads microseconds).
    ctx.clock.set(ctx.now().replace(microsecond=0))
    window = ctx.policy.gateway.replay_window_seconds
    for stale in (_now(ctx) - window - 1, _now(ctx) + window + 1):
        _error(gateway.signed(NATIVE, TRIGGER, timestamp=stale), 401, "stale_timestamp")
    _nothing_written(engine)
    assert gateway.signed(NATIVE, TRIGGER, timestamp=_now(ctx) - window).status_code == 202


def test_native_unknown_or_unconfigured_source(start_gateway, engine, ctx):
    gateway = start_gateway(ctx, environ={})
    _error(
        gateway.signed("/v1/emergencies/nobody", TRIGGER, timestamp=_now(ctx)),
        404,
        "unknown_source",
    )
    _error(gateway.signed(NATIVE, TRIGGER, timestamp=_now(ctx)), 401, "source_not_configured")
    _nothing_written(engine)


# --- Alertmanager -------------------------------------------------------------


def _alert(status="firing", severity="critical", fingerprint="fp1", **labels):
    return {
        "status": status,
        "labels": {"alertname": "DiskFull", "severity": severity, **labels},
        "annotations": {"summary": "磁盘将满 disk almost full"},
        "startsAt": "2026-03-09T01:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.local/graph",
        "fingerprint": fingerprint,
    }


def _hook(*alerts, status="firing"):
    return {
        "version": "4",
        "groupKey": '{}:{alertname="DiskFull"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "taskforce",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local",
        "alerts": list(alerts),
    }


def _am(gateway, payload, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return gateway.client.post("/v1/alertmanager", json=payload, headers=headers)


def test_alertmanager_firing_and_resolved(gateway, engine):
    r = _am(
        gateway,
        _hook(_alert(), _alert(severity="warning", fingerprint="fp2", working_group="wg:finance")),
    )
    assert r.status_code == 202, r.text
    results = r.json()["results"]
    assert [x["outcome"] for x in results] == ["opened", "opened"]
    with unit_of_work(engine) as s:
        rows = dict(s.execute(select(Emergency.dedup_key, Emergency.level)).all())
        wg = s.scalar(select(Emergency.working_group).where(Emergency.dedup_key == "fp2"))
    assert {k: v.value for k, v in rows.items()} == {"fp1": "I", "fp2": "III"}
    assert wg == "wg:finance"
    assert _am(gateway, _hook(_alert())).json()["results"][0]["outcome"] == "repeat"
    done = _am(
        gateway,
        _hook(
            _alert(status="resolved"),
            _alert(status="resolved", fingerprint="zz"),
            status="resolved",
        ),
    )
    assert [x["outcome"] for x in done.json()["results"]] == ["resolved", "not_open"]
    assert _count(engine, Emergency, Emergency.status == EmergencyStatus.resolved) == 1


@pytest.mark.parametrize(("token", "code"), [(None, "missing_token"), ("nope", "bad_token")])
def test_alertmanager_token(gateway, engine, token, code):
    _error(_am(gateway, _hook(_alert()), token=token), 401, code)
    r = gateway.client.post(
        "/v1/alertmanager", json=_hook(_alert()), headers={"Authorization": f"Basic {TOKEN}"}
    )
    _error(r, 401, "missing_token")
    _nothing_written(engine)


def test_alertmanager_bad_bodies(gateway, engine, caplog):
    # A batch whose every alert is refused is a 422 that writes nothing.
    r = _am(
        gateway,
        _hook(
            _alert(severity="apocalyptic", fingerprint="bad"),
            _alert(fingerprint="worse", working_group="wg:nope"),
        ),
    )
    error = _error(r, 422, "invalid_body", "alerts.0.labels.severity")
    assert "critical" in error["message"]  # the allowed values are named
    assert [p["field"] for p in error["problems"]] == [
        "alerts.0.labels.severity",
        "alerts.1.labels.working_group",
    ]
    # Alertmanager neither reads the answer nor retries a 4xx: the log names them.
    logged = [r.getMessage() for r in caplog.records if r.name == "taskforce.gateway.app"]
    assert any("alert worse refused (nothing of its batch taken)" in line for line in logged)
    _error(_am(gateway, {**_hook(_alert()), "version": "3"}), 422, "invalid_body", "version")
    _error(_am(gateway, {**_hook(_alert()), "extra": 1}), 422, "invalid_body", "extra")
    short = _alert()
    short["annotations"]["summary"] = "x"
    _error(_am(gateway, _hook(short)), 422, "invalid_body", "alerts.0.annotations.summary")
    # No summary: the title is the alert's name, and a problem with it is named there.
    named = _alert()
    named["annotations"] = {}
    named["labels"]["alertname"] = "X"
    _error(_am(gateway, _hook(named)), 422, "invalid_body", "alerts.0.labels.alertname")
    unlabelled = _alert()
    del unlabelled["labels"]["severity"]
    error = _error(_am(gateway, _hook(unlabelled)), 422, "invalid_body", "alerts.0.labels.severity")
    assert "no severity label" in error["message"] and "None" not in error["message"]
    no_fp = _alert()
    del no_fp["fingerprint"]
    _error(_am(gateway, _hook(no_fp)), 422, "invalid_body", "alerts.0.fingerprint")
    r = gateway.client.post(
        "/v1/alertmanager",
        content=b"{oops",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    _error(r, 400, "malformed_json")
    r = gateway.client.post(
        "/v1/alertmanager",
        content=json.dumps(_hook(_alert())),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"},
    )
    _error(r, 415, "unsupported_media_type")
    _nothing_written(engine)


def test_an_alert_refused_does_not_hold_back_the_others_of_its_batch(gateway, engine, caplog):
    """Alertmanager groups alerts and does not retry a 4xx: refusing a whole batch for one
    alert with a bad label silenced every alert grouped with it, at every flush. Each
    alert is taken or refused on its own; a refused one opens and pages nothing, is named
    in the answer and in the gateway's log. Working groups are checked against the
    organisation before anything is written."""
    r = _am(
        gateway,
        _hook(
            _alert(fingerprint="bad-level", severity="apocalyptic"),
            _alert(fingerprint="ok"),
            _alert(fingerprint="bad-group", working_group="wg:nope"),
            _alert(status="resolved", fingerprint="not-open"),
        ),
    )
    assert r.status_code == 202, r.text
    results = r.json()["results"]
    assert [(x["fingerprint"], x["outcome"]) for x in results] == [
        ("bad-level", "refused"),
        ("ok", "opened"),
        ("bad-group", "refused"),
        ("not-open", "not_open"),
    ]
    assert results[0]["problems"][0]["field"] == "alerts.0.labels.severity"
    assert "critical" in results[0]["problems"][0]["message"]  # the allowed values
    [group_problem] = results[2]["problems"]
    assert group_problem["field"] == "alerts.2.labels.working_group"
    assert "unknown working group 'wg:nope'" in group_problem["message"]
    assert "wg:finance" in group_problem["message"]  # the groups there are
    assert results[1]["problems"] == [] and results[1]["emergency_id"]
    with unit_of_work(engine) as s:
        assert s.scalars(select(Emergency.dedup_key)).all() == ["ok"]
    logged = [r.getMessage() for r in caplog.records if r.name == "taskforce.gateway.app"]
    assert any("alert bad-group refused" in line and "wg:nope" in line for line in logged)


@pytest.mark.parametrize("depth", [33, 3000])
def test_a_body_nested_too_deep_is_refused_on_every_endpoint(gateway, engine, ctx, depth):
    """3,000 brackets (6 KB) made json.loads raise RecursionError: a 500 with a traceback."""
    body = ("[" * depth + "]" * depth).encode()
    native = gateway.signed(NATIVE, body, timestamp=_now(ctx))
    alertmanager = gateway.client.post(
        "/v1/alertmanager",
        content=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    pagerduty = gateway.client.post(
        "/v2/enqueue", content=body, headers={"Content-Type": "application/json"}
    )
    for response in (native, alertmanager, pagerduty):
        error = _error(response, 422, "invalid_body", "body")
        assert "more than 32 levels" in error["message"]
    _nothing_written(engine)


def test_a_body_nested_to_the_limit_is_parsed(gateway, engine, ctx):
    details = {"a": 1}
    for _ in range(30):  # the trigger itself is level 1, details level 2: 32 in all
        details = {"n": details}
    r = gateway.signed(NATIVE, {**TRIGGER, "details": details}, timestamp=_now(ctx))
    assert r.status_code == 202, r.text


# --- PagerDuty ----------------------------------------------------------------


def _pd(gateway, action="trigger", dedup_key="pd-1", severity="critical", **extra):
    event = {"routing_key": ROUTING_KEY, "event_action": action, **extra}
    if dedup_key is not None:
        event["dedup_key"] = dedup_key
    if action == "trigger" and "payload" not in extra:
        event["payload"] = {"summary": "支付网关超时", "source": "pay-gw-1", "severity": severity}
    return gateway.client.post("/v2/enqueue", json=event)


def test_pagerduty_trigger_acknowledge_resolve(gateway, engine):
    r = _pd(gateway)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "success" and body["dedup_key"] == "pd-1"
    with unit_of_work(engine) as s:
        assert s.scalars(select(Emergency.level)).one().value == "I"
    assert _pd(gateway).json()["emergency_id"] == body["emergency_id"]
    assert _pd(gateway, "acknowledge").status_code == 202
    assert _pd(gateway, "resolve").status_code == 202
    assert _count(engine, Emergency, Emergency.status == EmergencyStatus.resolved) == 1
    # A trigger without a dedup key gets one.
    r = _pd(gateway, dedup_key=None, severity="info")
    assert r.status_code == 202 and r.json()["dedup_key"]
    assert _count(engine, EmergencyEvent, EmergencyEvent.kind == "repeat") == 1


def test_pagerduty_bad_requests(gateway, engine):
    r = gateway.client.post("/v2/enqueue", json={"routing_key": "wrong", "event_action": "trigger"})
    _error(r, 401, "bad_routing_key", "routing_key")
    _error(
        gateway.client.post("/v2/enqueue", json={"event_action": "trigger"}),
        401,
        "missing_routing_key",
    )
    _error(_pd(gateway, payload=None), 422, "invalid_body", "payload")
    _error(_pd(gateway, "acknowledge", dedup_key=None), 422, "invalid_body", "dedup_key")
    _error(_pd(gateway, severity="fatal"), 422, "invalid_body", "payload.severity")
    short = {"summary": "x", "source": "s", "severity": "info"}  # found by schemathesis
    _error(_pd(gateway, payload=short), 422, "invalid_body", "payload.summary")
    _error(_pd(gateway, event_action_extra=1), 422, "invalid_body", "event_action_extra")
    _error(_pd(gateway, "resolve", dedup_key="never-opened"), 404, "not_found", "dedup_key")
    _error(
        gateway.client.post(
            "/v2/enqueue", content=b"nope", headers={"Content-Type": "application/json"}
        ),
        400,
        "malformed_json",
    )
    _nothing_written(engine)


# --- OpenAPI -------------------------------------------------------------------


def test_openapi_is_served_and_its_refs_resolve(gateway):
    schema = gateway.client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) >= {
        "/v1/emergencies/{source}",
        "/v1/emergencies/{source}/acknowledge",
        "/v1/emergencies/{source}/resolve",
        "/v1/alertmanager",
        "/v2/enqueue",
    }
    components = schema["components"]["schemas"]
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    assert refs and all(r.removeprefix("#/components/schemas/") in components for r in refs)
    trigger = components["NativeTrigger"]
    assert set(trigger["required"]) >= {"level", "title", "dedup_key"}
    assert trigger["additionalProperties"] is False
    post = paths["/v1/emergencies/{source}"]["post"]
    assert {"202", "400", "401", "413", "415", "422"} <= set(post["responses"])


# --- concurrency ---------------------------------------------------------------


@pytest.mark.slow
def test_200_concurrent_duplicates_make_one_emergency_and_one_page(gateway, engine, ctx):
    payload = json.dumps({**TRIGGER, "level": "I"}).encode()

    async def fire():
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=gateway.url, timeout=120, limits=limits) as client:
            from taskforce.gateway.auth import sign

            ts = str(_now(ctx))
            headers = {
                "Content-Type": "application/json",
                "X-Taskforce-Timestamp": ts,
                "X-Taskforce-Signature": sign("s3cret-monitoring", ts, payload),
            }
            return await asyncio.gather(
                *(client.post(NATIVE, content=payload, headers=headers) for _ in range(200))
            )

    responses = asyncio.run(fire())
    assert [r.status_code for r in responses] == [202] * 200
    ids = {r.json()["emergency_id"] for r in responses}
    assert len(ids) == 1
    assert sum(r.json()["created"] for r in responses) == 1
    assert _count(engine, Emergency) == 1
    with unit_of_work(engine) as s:
        assert s.scalar(select(Emergency.repeats)) == 199
    assert _count(engine, EmergencyEvent, EmergencyEvent.kind == "page") == 1
    assert _pages(engine) == [f"member-L{i}" for i in range(1, 8)]  # one page: its 7 rows
