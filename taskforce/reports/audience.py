"""Who may read a report (SPEC §7): a report for an audience shows only records cleared for it.

Filter at the query (`cleared_for` in a WHERE clause), so text of a record the
audience may not read is never even loaded; `assert_cleared` is the last check
before rendering.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from taskforce.policy.schema import Classification


class NotCleared(ValueError):
    """A record above the report's audience reached the renderer."""


def cleared_for(audience: Classification | str) -> list[Classification]:
    """The classifications an audience may read: public ⊂ internal ⊂ secret."""
    audience = Classification(audience)
    return [c for c in Classification if c.readable_by(audience)]


def visible(rows: Iterable[Mapping[str, Any]], audience: Classification | str) -> list:
    """The rows whose `classification` the audience may read (a row without one is internal)."""
    allowed = set(cleared_for(audience))
    return [r for r in rows if Classification(r.get("classification") or "internal") in allowed]


def assert_cleared(context: Any, audience: Classification | str, path: str = "context") -> None:
    """Walk a report context; any mapping with a `classification` above the audience is an error."""
    audience = Classification(audience)
    if isinstance(context, Mapping):
        level = context.get("classification")
        if level is not None and not Classification(str(level)).readable_by(audience):
            raise NotCleared(f"{path}: a {level} record in a report for a {audience} audience")
        for key, value in context.items():
            assert_cleared(value, audience, f"{path}.{key}")
    elif isinstance(context, list | tuple):
        for i, value in enumerate(context):
            assert_cleared(value, audience, f"{path}[{i}]")
