"""Units and groups as a report's reader names them."""

from __future__ import annotations

from taskforce.policy.loader import load_org


def owner_names(locale: str) -> dict[str, str]:
    """Units and groups by code, in the locale's words (an audit finding's owner is either):
    config/org.yaml's Chinese names for zh-CN, its English names otherwise."""
    org = load_org()
    english = locale != "zh-CN"
    return {
        item.code: (item.name_en if english else item.name) for item in (*org.units, *org.groups)
    }
