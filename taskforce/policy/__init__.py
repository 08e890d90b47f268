"""Policy as data: config/*.yaml loaded into typed, validated models."""

from taskforce.policy.loader import ConfigError, config_dir, load_org, load_policy
from taskforce.policy.schema import Organisation, Policy

__all__ = ["ConfigError", "Organisation", "Policy", "config_dir", "load_org", "load_policy"]
