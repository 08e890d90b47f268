"""Authentication of the three kinds of sender. Secrets come from the environment."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
from collections.abc import Mapping

from taskforce.gateway.errors import GatewayError

TIMESTAMP_HEADER = "X-Taskforce-Timestamp"
SIGNATURE_HEADER = "X-Taskforce-Signature"
SIGNATURE_PREFIX = "sha256="
# As ASGI servers hand header names over: lower case.
TIMESTAMP_HEADER_KEY = TIMESTAMP_HEADER.lower()
SIGNATURE_HEADER_KEY = SIGNATURE_HEADER.lower()


@functools.lru_cache(maxsize=1024)
def secret_env_name(prefix: str, source: str) -> str:
    return prefix + re.sub(r"[^A-Z0-9]", "_", source.upper())


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """The native signature: HMAC-SHA256 over b"<timestamp>.<body>", hex, with a sha256= prefix."""
    # hmac.digest: the one-shot C implementation (hmac.new builds a Python object per call).
    digest = hmac.digest(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SIGNATURE_PREFIX + digest.hex()


def verify_signature(
    *,
    secret: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: dt.datetime,
    window_seconds: int,
) -> None:
    if not secret:
        raise GatewayError(
            401, "source_not_configured", "no signing secret is configured for this source"
        )
    if not timestamp:
        raise GatewayError(
            401, "missing_timestamp", f"the {TIMESTAMP_HEADER} header is required", TIMESTAMP_HEADER
        )
    if not signature:
        raise GatewayError(
            401, "missing_signature", f"the {SIGNATURE_HEADER} header is required", SIGNATURE_HEADER
        )
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise GatewayError(
            401,
            "bad_timestamp",
            f"{TIMESTAMP_HEADER} must be Unix seconds (an integer)",
            TIMESTAMP_HEADER,
        ) from None
    skew = abs(now.timestamp() - sent_at)
    if skew > window_seconds:
        raise GatewayError(
            401,
            "stale_timestamp",
            f"{TIMESTAMP_HEADER} is {int(skew)} s away from the gateway's clock; "
            f"at most {window_seconds} s is accepted (replay protection)",
            TIMESTAMP_HEADER,
        )
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected, signature.strip()):
        raise GatewayError(
            401,
            "bad_signature",
            f"{SIGNATURE_HEADER} does not match HMAC-SHA256 of '<timestamp>.<body>' "
            "with this source's secret",
            SIGNATURE_HEADER,
        )


def verify_bearer(authorization: str | None, *, env_name: str, environ: Mapping[str, str]) -> None:
    expected = environ.get(env_name)
    if not expected:
        raise GatewayError(401, "receiver_not_configured", "no bearer token is configured")
    if not authorization:
        raise GatewayError(
            401, "missing_token", "the Authorization: Bearer <token> header is required"
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise GatewayError(
            401, "missing_token", "the Authorization header must be 'Bearer <token>'"
        )
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise GatewayError(401, "bad_token", "the bearer token is not valid", "Authorization")


def verify_routing_key(routing_key: str, *, env_name: str, environ: Mapping[str, str]) -> None:
    expected = environ.get(env_name)
    if not expected:
        raise GatewayError(401, "receiver_not_configured", "no routing key is configured")
    if not hmac.compare_digest(routing_key.encode(), expected.encode()):
        raise GatewayError(401, "bad_routing_key", "the routing_key is not valid", "routing_key")
