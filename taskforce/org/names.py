"""Units and groups as a report's reader names them."""

from __future__ import annotations

from taskforce.policy.loader import load_org


def group_names() -> dict[str, tuple[str, str]]:
    """Groups by code: (Chinese name, English name), from config/org.yaml."""
    return {group.code: (group.name, group.name_en) for group in load_org().groups}


def owner_names(locale: str) -> dict[str, str]:
    """Units and groups by code, in the locale's words (an audit finding's owner is either):
    config/org.yaml's Chinese names for zh-CN, its English names otherwise."""
    org = load_org()
    english = locale != "zh-CN"
    return {
        item.code: (item.name_en if english else item.name) for item in (*org.units, *org.groups)
    }
