"""Schemathesis against the served OpenAPI schema, over real HTTP: no input makes a 5xx.

Schemathesis' own pytest plugin does not load with this pytest, so each operation's
Hypothesis strategy is driven here directly. Generated requests carry valid
credentials (signed native bodies, the bearer token, the routing key), so the
fuzzing reaches validation and the database, not only the 401s.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.gateway.server import ROUTING_KEY, TOKEN

EXAMPLES_PER_OPERATION = int(os.environ.get("TASKFORCE_FUZZ_EXAMPLES", "40"))  # more: set it


def _send(gateway, ctx, case):
    if case.path.startswith("/v1/emergencies/"):
        case.path_parameters = {"source": "monitoring"}
        body = json.dumps(case.body).encode()
        path = case.path.replace("{source}", "monitoring")
        return gateway.signed(path, body, timestamp=int(ctx.now().timestamp()))
    if case.path == "/v2/enqueue" and isinstance(case.body, dict):
        case.body["routing_key"] = ROUTING_KEY
    return case.call(base_url=gateway.url, headers={"Authorization": f"Bearer {TOKEN}"})


@pytest.mark.slow
@pytest.mark.filterwarnings(
    "ignore::hypothesis.errors.HypothesisDeprecationWarning"
)  # inside schemathesis
def test_no_input_makes_a_server_error(gateway, ctx):
    schema = schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 6
    statuses: Counter[int] = Counter()
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def never_a_5xx(case):
            response = _send(gateway, ctx, case)
            statuses[response.status_code] += 1
            assert response.status_code < 500, (case.path, case.body, response.text)
            if response.status_code >= 400:
                assert "error" in response.json()  # every refusal names its problem

        never_a_5xx()
    assert statuses[202] > 0, statuses  # the fuzzing got through to the database
