"""要点: what a review asks of its meeting, in a few sentences at the top of the report.

The tables below a review's head say everything; a leadership meeting reads these lines
first. Each line is a count (no record text, so it is the same for every audience) and
appears only when there is something to act on: missed targets, red items and where their
interviews (约谈) and escalations stand, warnings and emergencies past their deadline,
issues past their stage deadline, and the budget's execution against the time elapsed.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, func, select

from taskforce.emergency.models import EarlyWarning, Emergency, WarningStatus
from taskforce.kpi.compute import KpiSet
from taskforce.loop.models import Colour, TaskLevel, TaskNode
from taskforce.reports.i18n import Translate
from taskforce.reports.render import fmt_kpi, fmt_percent
from taskforce.reviews.periods import Period

WARNING_COLOURS = ("red", "orange", "yellow")


def attention_counts(conn: Connection, now: dt.datetime) -> dict:
    """The counts behind the key points that the KPI frames do not carry, as of `now`: open
    red items (with an interview requested, escalated), open warnings whose deadline is
    before `now` (escalated ones were acted on), and unresolved real emergencies."""
    red_open = (
        (TaskNode.level == TaskLevel.action_item)
        & TaskNode.done.is_(False)
        & (TaskNode.colour == Colour.red)
    )
    red, interviewed, escalated = conn.execute(
        select(
            func.count(),
            func.count(TaskNode.interview_requested_at),
            func.count(TaskNode.escalated_at),
        ).where(red_open)
    ).one()
    late = dict(
        conn.execute(
            select(EarlyWarning.colour, func.count())
            .where(EarlyWarning.status == WarningStatus.open, EarlyWarning.deadline_at < now)
            .group_by(EarlyWarning.colour)
        ).all()
    )
    open_emergencies = conn.scalar(
        select(func.count())
        .select_from(Emergency)
        .where(Emergency.resolved_at.is_(None), Emergency.is_drill.is_(False))
    )
    return {
        "red": int(red),
        "interviewed": int(interviewed),
        "escalated": int(escalated),
        "warnings_late": {str(getattr(c, "value", c)): int(n) for c, n in late.items()},
        "emergencies_open": int(open_emergencies or 0),
    }


def key_points(current: KpiSet, counts: dict, period: Period, t: Translate) -> list[str]:
    """The review's 要点, most pressing first; one line saying so when nothing needs a decision."""
    points = []
    missed = [k for k in current.kpis.values() if k.status == "missed"]
    if missed:
        names = t("list_sep").join(
            t(
                "points.kpi_item",
                kpi=t(f"kpi.{k.code}"),
                value=fmt_kpi(k.value, k.unit),
                rule=t(f"target_rule.{k.target_rule}"),
                target=fmt_kpi(k.target, k.unit),
            )
            for k in missed
        )
        points.append(t("points.kpis_missed", n=len(missed), names=names))
    if counts["red"]:
        points.append(
            t(
                "points.red_items",
                n=counts["red"],
                interviewed=counts["interviewed"],
                escalated=counts["escalated"],
            )
        )
    late = counts["warnings_late"]
    if sum(late.values()):
        detail = t("list_sep").join(
            t("points.count_of", n=late[c], what=t(f"warning.{c}"))
            for c in WARNING_COLOURS
            if late.get(c)
        )
        points.append(t("points.warnings_late", n=sum(late.values()), detail=detail))
    if counts["emergencies_open"]:
        points.append(t("points.emergencies_open", n=counts["emergencies_open"]))
    overdue = sum(s["overdue"] for s in current.details.get("stages", []))
    if overdue:
        points.append(t("points.stages_overdue", n=overdue))
    budget = current.details.get("budget")
    rate = current.kpis.get("budget_execution_rate")
    if budget and budget["approved_fen"] and rate is not None and rate.value is not None:
        year_start = dt.date(budget["year"], 1, 1)
        days_in_year = (dt.date(budget["year"] + 1, 1, 1) - year_start).days
        elapsed = ((period.last_day - year_start).days + 1) / days_in_year
        points.append(
            t(
                "points.budget",
                year=budget["year"],
                rate=fmt_percent(rate.value),
                elapsed=fmt_percent(elapsed),
                day=period.last_day.isoformat(),
            )
        )
    return points or [t("points.none")]
