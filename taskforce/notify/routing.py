"""Which audiences exist: the routing table's tags and every member's contacts."""

from __future__ import annotations

from taskforce.policy.schema import Organisation, Policy


def known_audiences(policy: Policy, org: Organisation) -> set[str]:
    """Every tag a notification may be addressed to (placeholders expand to the org's groups)."""
    out: set[str] = set()
    for tags in policy.notifications.routing.values():
        for tag in tags:
            if tag.startswith("{") and tag.endswith("}"):
                if tag == "{working_group}":
                    out |= {g.code for g in org.groups if g.code.startswith("wg:")}
                elif tag in ("{owner}", "{member}"):
                    out |= {f"member-{m.code}" for m in org.members}
                continue
            out.add(tag)
    out |= {g.code for g in org.groups if g.code.startswith("wg:")}
    for member in org.members:
        out |= set(member.contacts) or {f"member-{member.code}"}
    return out
