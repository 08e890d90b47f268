"""要点: what a review asks of its meeting, in a few sentences at the top of the report.

The tables below a review's head say everything; a leadership meeting reads these lines
first. Each line is a count (no record text, so it is the same for every audience) and
appears only when there is something to act on: missed targets, red items and where their
interviews (约谈) and escalations stand, warnings past their deadline, unresolved
emergencies, issues past their stage deadline. When there is none, one line says so. The
budget's execution against the share of the year elapsed closes the list as context.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Connection, func, select

from taskforce.emergency.models import WarningStatus
from taskforce.kpi.compute import KpiSet
from taskforce.kpi.frames import Frames
from taskforce.loop.models import Colour, TaskLevel, TaskNode
from taskforce.money import format_yuan
from taskforce.reports.i18n import Translate
from taskforce.reports.render import fmt_kpi, fmt_percent
from taskforce.reviews.periods import Period

WARNING_COLOURS = ("red", "orange", "yellow")


def red_item_steps(conn: Connection) -> dict[str, int]:
    """How many open red items have an interview (约谈) requested, and how many were
    escalated to the leadership group."""
    interviewed, escalated = conn.execute(
        select(
            func.count(TaskNode.interview_requested_at), func.count(TaskNode.escalated_at)
        ).where(
            TaskNode.level == TaskLevel.action_item,
            TaskNode.done.is_(False),
            TaskNode.colour == Colour.red,
        )
    ).one()
    return {"interviewed": int(interviewed), "escalated": int(escalated)}


def attention_counts(frames: Frames, red_steps: dict[str, int], now: dt.datetime) -> dict:
    """The counts behind the key points as of `now`: open red items (from the review's
    frames; `red_steps` from red_item_steps), open warnings whose deadline is before `now`
    (escalated ones were acted on), and unresolved real emergencies."""
    tasks = frames.tasks
    red = tasks[~tasks["done"] & (tasks["colour"] == Colour.red.value)]
    warnings = frames.warnings
    late = warnings[
        (warnings["status"] == WarningStatus.open.value)
        & (warnings["deadline_at"] < pd.Timestamp(now))
    ]
    emergencies = frames.emergencies
    return {
        "red": len(red),
        "interviewed": red_steps["interviewed"],
        "escalated": red_steps["escalated"],
        "warnings_late": {str(c): int(n) for c, n in late["colour"].value_counts().items()},
        "emergencies_open": int(
            (emergencies["resolved_at"].isna() & ~emergencies["is_drill"]).sum()
        ),
    }


def key_points(current: KpiSet, counts: dict, period: Period, t: Translate) -> list[str]:
    """The review's 要点, most pressing first (or one line saying nothing needs a decision),
    then the budget's execution."""
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
    if not points:
        points.append(t("points.none"))
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
                approved=format_yuan(budget["approved_fen"], t("lang")),
            )
        )
    return points
