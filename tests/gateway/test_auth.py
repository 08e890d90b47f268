"""The native signature holds for every body and timestamp, and breaks on any change."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskforce.gateway.auth import sign, verify_signature
from taskforce.gateway.errors import GatewayError

NOW = dt.datetime(2026, 3, 9, 1, 0, tzinfo=dt.UTC)
WINDOW = 300


@given(body=st.binary(max_size=512), skew=st.integers(-WINDOW, WINDOW), secret=st.text(min_size=1))
def test_signed_requests_verify_within_the_window(body, skew, secret):
    ts = str(int(NOW.timestamp()) + skew)
    verify_signature(
        secret=secret,
        timestamp=ts,
        signature=sign(secret, ts, body),
        body=body,
        now=NOW,
        window_seconds=WINDOW,
    )


@given(body=st.binary(min_size=1, max_size=512), data=st.data())
def test_any_changed_byte_breaks_the_signature(body, data):
    ts = str(int(NOW.timestamp()))
    signature = sign("secret", ts, body)
    i = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = body[:i] + bytes([body[i] ^ flip]) + body[i + 1 :]
    with pytest.raises(GatewayError) as err:
        verify_signature(
            secret="secret",
            timestamp=ts,
            signature=signature,
            body=tampered,
            now=NOW,
            window_seconds=WINDOW,
        )
    assert err.value.code == "bad_signature"


@given(skew=st.integers(WINDOW + 1, 10**9), sign_of=st.sampled_from([-1, 1]))
def test_outside_the_window_is_stale(skew, sign_of):
    ts = str(int(NOW.timestamp()) + sign_of * skew)
    with pytest.raises(GatewayError) as err:
        verify_signature(
            secret="s",
            timestamp=ts,
            signature=sign("s", ts, b"{}"),
            body=b"{}",
            now=NOW,
            window_seconds=WINDOW,
        )
    assert err.value.code == "stale_timestamp"
