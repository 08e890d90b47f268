"""The native trigger's per-request shortcuts give what the long way gives, for all inputs:

* the 202 body rendered by hand equals FastAPI's JSONResponse of the `Accepted` model;
* `_json` searches for NUL only when the bytes can hold one, with the same outcome as
  searching always (UTF-8, UTF-16 and UTF-32 bodies, escaped and literal);
* NativeTrigger validated in the gateway's context (NUL already searched) equals the full
  validation for every body `_json` lets through.
"""

from __future__ import annotations

import json

import pytest
from fastapi.responses import JSONResponse
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from taskforce.emergency.forms import nul_path
from taskforce.emergency.models import Level
from taskforce.gateway.app import _Accepted, _json
from taskforce.gateway.errors import GatewayError
from taskforce.gateway.schemas import NUL_CHECKED, Accepted, NativeTrigger

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=10,
)


@given(
    emergency_id=_text,
    created=st.booleans(),
    status=_text,
    level=st.sampled_from(list(Level)),
    dispatched=st.booleans(),
    is_drill=st.booleans(),
)
def test_accepted_body_is_the_json_response(
    emergency_id, created, status, level, dispatched, is_drill
):
    fields = (emergency_id, created, status, level, dispatched, is_drill)
    model = Accepted(**dict(zip(_Accepted._fields, fields, strict=True)))
    assert _Accepted(*fields).json() == JSONResponse(model.model_dump(mode="json")).body


class _NotJson(Exception):
    pass


def _not_json(token: str):
    raise _NotJson(token)


class _TooLarge(Exception):
    pass


def _finite_or_not_json(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _TooLarge(text)
    return value


def _json_the_long_way(body: bytes):
    """`_json` as it was: parse, then always search for NUL. NaN and Infinity, which
    Python's json reads, are not JSON numbers (RFC 8259)."""
    try:
        raw = json.loads(body, parse_constant=_not_json, parse_float=_finite_or_not_json)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return ("400", f"the body is not valid JSON: {exc}")
    except _NotJson as exc:
        return ("400", f"the body is not valid JSON: {exc} is not a JSON number (RFC 8259)")
    except _TooLarge as exc:
        return ("400", f"the body is not valid JSON here: {exc} is beyond the range of a double")
    if (where := nul_path(raw)) is not None:
        return ("422", where or "body")
    return ("ok", raw)


def _outcome(body: bytes):
    try:
        return ("ok", _json(body))
    except GatewayError as exc:
        return (str(exc.status), exc.message if exc.status == 400 else exc.field)


@settings(max_examples=300)
@given(
    value=_json_values,
    encoding=st.sampled_from(["utf-8", "utf-16", "utf-32", "utf-16-le", "utf-8-sig"]),
    ensure_ascii=st.booleans(),
)
def test_json_finds_nul_exactly_as_searching_always(value, encoding, ensure_ascii):
    body = json.dumps(value, ensure_ascii=ensure_ascii).encode(encoding)
    assert _outcome(body) == _json_the_long_way(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "x\\u0000"}',
        b'{"a\\u0000": 1}',
        b'{"a": "\\\\u0000"}',  # an escaped backslash, then the text u0000: no NUL
        b'{"a": "x\x00"}',  # a raw control character: not JSON
        '{"a": "\\u0000"}'.encode("utf-16"),
        b"[1, 2",
    ],
)
def test_json_nul_edge_cases(body):
    assert _outcome(body) == _json_the_long_way(body)


def _validated(raw, **kwargs):
    try:
        return ("ok", NativeTrigger.model_validate(raw, **kwargs).model_dump())
    except ValidationError as exc:
        return ("invalid", [(e["loc"], e["type"], e["msg"]) for e in exc.errors()])


@settings(max_examples=300)
@given(
    raw=st.fixed_dictionaries(
        {"dedup_key": _text, "level": st.sampled_from(["I", "II", "III", "IV"]), "title": _text},
        optional={
            "description": _text,
            "working_group": st.sampled_from(["wg:data", "wg:x-1", "bad", None]),
            "classification": st.sampled_from(["public", "internal", "secret", "x"]),
            "details": st.dictionaries(_text, _json_values, max_size=3),
            "drill": st.booleans(),
            "colour": _text,
        },
    )
)
def test_native_trigger_in_the_gateways_context_validates_as_in_full(raw):
    if nul_path(raw) is not None:
        return  # `_json` answers these before validation
    assert _validated(raw, context=NUL_CHECKED) == _validated(raw)


@given(secret=_text.filter(bool), timestamp=st.integers(0, 2**40), body=st.binary(max_size=200))
def test_signature_is_hmac_sha256_of_timestamp_dot_body(secret, timestamp, body):
    import hashlib
    import hmac

    from taskforce.gateway.auth import sign

    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert sign(secret, timestamp, body) == "sha256=" + expected.hexdigest()
