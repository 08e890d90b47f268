"""Policy as data: config/*.yaml loaded into typed, validated models."""

from taskforce.policy.loader import (
    ConfigError,
    check_policy_against_org,
    config_dir,
    load_org,
    load_policy,
)
from taskforce.policy.schema import Organisation, Policy

__all__ = [
    "ConfigError",
    "Organisation",
    "Policy",
    "check_policy_against_org",
    "config_dir",
    "load_org",
    "load_policy",
]
