"""prefect.yaml schedules the budget audits with the cadence config/taskforce.yaml names."""

from __future__ import annotations

import yaml

from tests.conftest import ROOT


def test_budget_deployment_schedules_follow_the_policy(policy):
    deployments = {
        d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    }
    weekly = deployments["budget-audit"]["schedules"][0]
    half = deployments["budget-performance-audit"]["schedules"][0]
    assert weekly["cron"] == policy.reviews.weekly_budget_audit
    assert half["cron"] == policy.reviews.semiannual_audit
    assert weekly["timezone"] == half["timezone"] == policy.timezone
    for name, deployment in deployments.items():
        if name.startswith("budget-"):
            module, function = deployment["entrypoint"].split(":")
            assert (ROOT / module).exists() and function
