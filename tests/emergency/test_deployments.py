"""prefect.yaml's emergency deployments point at real flows, with the configured schedules."""

from __future__ import annotations

import importlib

import yaml

from tests.conftest import ROOT

EXPECTED = {
    "emergency-response": "emergency-response",
    "open-emergency": "open-emergency",
    "acknowledge-emergency": "acknowledge-emergency",
    "resolve-emergency": "resolve-emergency",
    "dispatch-pending-emergencies": "dispatch-pending-emergencies",
    "quarterly-drill": "quarterly-drill",
    "raise-warning": "raise-warning",
    "record-emergency-deadline": "record-emergency-deadline",
    "handle-warning": "handle-warning",
}


def test_emergency_deployments(policy):
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    deployments = {d["name"]: d for d in spec["deployments"]}
    for name, flow_name in EXPECTED.items():
        path, func = deployments[name]["entrypoint"].split(":")
        flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), func)
        assert flow.name == flow_name, name
    # The gateway starts "<flow>/<deployment>" from config.
    assert policy.gateway.deployment == "emergency-response/emergency-response"
    drill = deployments["quarterly-drill"]["schedules"][0]
    assert drill["cron"] == policy.reviews.quarterly_drill
    assert drill["timezone"] == policy.timezone
