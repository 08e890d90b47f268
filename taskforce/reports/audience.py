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


# Who reads the Prefect UI (run names, logs, artifacts): the office's operators, cleared for
# internal material (E3, E4 in config/org.yaml); what is above it is withheld there.
PREFECT_UI_CLEARANCE = Classification.internal
WITHHELD = "[密级高于本视图，不予显示 withheld: above this view's clearance]"


def withhold(frame, columns: Iterable[str], audience: Classification | str = PREFECT_UI_CLEARANCE):
    """A copy of a pandas frame with `columns` withheld on the rows whose `classification`
    the audience may not read (the task cockpit and issue board in the Prefect UI)."""
    out = frame.copy()
    if out.empty:
        return out
    allowed = {c.value for c in cleared_for(audience)}
    hidden = ~out["classification"].isin(allowed)
    for column in columns:
        if column in out.columns:
            out[column] = out[column].astype(object)
            out.loc[hidden, column] = WITHHELD
    return out
