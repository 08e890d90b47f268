"""The dispatch sweep's red-item notices: one digest per owner unit, classification and step.

A weekly sweep can turn thousands of items red at once. One trail entry and one message per
item and audience meant tens of thousands of messages to the same executive director in one
minute, which nobody reads, and most of the sweep's time. As alert managers group alerts,
the sweep groups its red-item steps (SPEC §2 step 4):

* **items turned red** — the interview (约谈) requested of each owner unit, listing its items;
* **items escalated** — red past `progress.red_escalation_days`: to the leadership group,
  with the orange warning raised for each item (listed by id in the entry).

Each digest is one trail entry of the day's sweep naming the owner unit and every item, and
one notice per audience naming the count and the first `notifications.digest_items` items,
most overdue first; the full list is in the task cockpit. Items are grouped by their issue's
classification as well, so a secret issue's item never shares a message with an internal
one: the outbox redacts per row (taskforce/notify/render.py).

A progress report on a red item whose interview the sweep has not requested yet sends its own
per-item notice (taskforce/loop/feedback.py): that is one item, reported by an operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from taskforce.clock import local_minute
from taskforce.context import Context
from taskforce.emergency.models import WarningColour
from taskforce.emergency.warnings import deadline_after
from taskforce.policy.schema import Classification

# The warning an item red past the escalation window raises (SPEC §5: the leadership group
# steps in).
ESCALATION_COLOUR = WarningColour.orange


class Unit(NamedTuple):
    code: str
    name: str
    name_en: str


class RedItem(NamedTuple):
    """One item of a digest: what the trail lists and the message may show."""

    item_id: int
    issue_number: str
    classification: Classification
    title: str
    owner_unit_id: int | None
    overdue_since: str  # ISO day or time it fell behind ("" unknown): the message's order
    warning_id: int | None = None


def turned_red_digests(
    ctx: Context, items: list[RedItem], units: Mapping[int, Unit], *, actor: str
) -> list[dict[str, Any]]:
    """`events.record` keyword arguments: one `sweep.items_turned_red` per group."""
    return [
        _digest(
            ctx,
            group,
            units.get(owner),
            classification,
            action="sweep.items_turned_red",
            notify="items_turned_red",
            payload={"interview_requested": True},
            context={},
            actor=actor,
        )
        for (owner, classification), group in _groups(items).items()
    ]


def escalated_digests(
    ctx: Context, items: list[RedItem], units: Mapping[int, Unit], *, actor: str
) -> list[dict[str, Any]]:
    """`events.record` keyword arguments: one `sweep.items_escalated` per group, listing the
    orange warning raised for each item (an item warned before has none)."""
    red_days = ctx.policy.progress.red_escalation_days
    rule = getattr(ctx.policy.warnings, ESCALATION_COLOUR.value)
    # The office's local time, as a reader acts on it (the warnings store it in UTC).
    deadline = local_minute(deadline_after(rule, ctx.now()), ctx.policy.timezone)
    out = []
    for (owner, classification), group in _groups(items).items():
        warnings = {str(i.item_id): i.warning_id for i in group if i.warning_id is not None}
        out.append(
            _digest(
                ctx,
                group,
                units.get(owner),
                classification,
                action="sweep.items_escalated",
                notify="items_escalated",
                payload={"red_days": red_days, "warnings": warnings},
                context={
                    "red_days": red_days,
                    "warnings": len(warnings),
                    "colour_zh": rule.name_zh,
                    "deadline": deadline,
                },
                actor=actor,
            )
        )
    return out


def _groups(items: list[RedItem]) -> dict[tuple[int | None, Classification], list[RedItem]]:
    """Items by (owner unit, classification), each group most overdue first, then by id."""
    groups: dict[tuple[int | None, Classification], list[RedItem]] = {}
    for item in items:
        groups.setdefault((item.owner_unit_id, item.classification), []).append(item)
    for group in groups.values():
        group.sort(key=lambda i: (i.overdue_since == "", i.overdue_since, i.item_id))
    # A stable order of groups: the trail is a sequence, and reruns must write the same one.
    return dict(
        sorted(groups.items(), key=lambda kv: (kv[0][0] is None, kv[0][0] or 0, kv[0][1].value))
    )


def _digest(
    ctx: Context,
    group: list[RedItem],
    unit: Unit | None,
    classification: Classification,
    *,
    action: str,
    notify: str,
    payload: dict[str, Any],
    context: dict[str, Any],
    actor: str,
) -> dict[str, Any]:
    shown = ctx.policy.notifications.digest_items
    return {
        "at": ctx.now(),
        "actor": actor,
        "action": action,
        # The sweep of the day: a channel not cleared for a secret digest sees only
        # "dispatch sweep <day>", not which unit has overdue secret work.
        "subject_type": "sweep",
        "subject_id": ctx.today().isoformat(),
        "classification": classification,
        "notify": notify,
        # The unit, and every item by id with its issue: the trail records who was asked what.
        "payload": {
            "owner": unit.code if unit else None,
            "items": {str(i.item_id): i.issue_number for i in group},
            **payload,
        },
        "context": {
            "owner": unit.code if unit else None,
            "owner_name": unit.name if unit else None,
            "owner_name_en": unit.name_en if unit else None,
            "count": len(group),
            "items": [
                {"issue": i.issue_number, "item_id": i.item_id, "item": i.title}
                for i in group[:shown]
            ],
            "more": max(len(group) - shown, 0),
            **context,
        },
    }
