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
from collections import Counter

from sqlalchemy import Connection, and_, case, func, select

from taskforce.bulk import chunks
from taskforce.emergency.models import EarlyWarning, WarningStatus
from taskforce.kpi.compute import KpiSet
from taskforce.kpi.frames import Frames
from taskforce.loop.models import Issue, Stage, TaskLevel, TaskNode
from taskforce.money import format_yuan_alike
from taskforce.reports.i18n import Translate
from taskforce.reports.render import fmt_kpi, fmt_percent
from taskforce.reviews.periods import Period, share_of_year

WARNING_COLOURS = ("red", "orange", "yellow")


def open_matters(conn: Connection, now: dt.datetime, today: dt.date) -> dict:
    """What the key points count beyond the KPI frames, as of `now` (local day `today`): the
    open red items (due before today: colours.colour_of), how many of them have an
    interview (约谈) requested and how many were escalated to the leadership group;
    the open warnings past their deadline by colour, and how many of them concern an item
    already done or an issue already closed (the warning was never closed: the meeting
    should close it, not chase its subject)."""
    red_item = and_(
        TaskNode.level == TaskLevel.action_item,
        TaskNode.done.is_(False),
        TaskNode.due_date < today,  # red (taskforce/loop/colours.py)
    )
    # Counted in one pass over the table, not filtered in a WHERE: SQLite would walk the
    # (level, done) prefix of the sweep's index and fetch a million rows one by one (1.9 s
    # against 0.3 s at the scale of issue 9).
    red, interviewed, escalated = conn.execute(
        select(
            func.count(case((red_item, 1))),
            func.count(case((red_item & TaskNode.interview_requested_at.is_not(None), 1))),
            func.count(case((red_item & TaskNode.escalated_at.is_not(None), 1))),
        ).select_from(TaskNode)
    ).one()
    # Escalated warnings were acted on; only open ones past their deadline are late.
    late = conn.execute(
        select(EarlyWarning.colour, EarlyWarning.subject_type, EarlyWarning.subject_id).where(
            EarlyWarning.status == WarningStatus.open, EarlyWarning.deadline_at < now
        )
    ).all()
    items = sorted({int(s) for _, kind, s in late if kind == "task" and str(s).isdigit()})
    issues = sorted({str(s) for _, kind, s in late if kind == "issue"})
    finished: set[tuple[str, str]] = set()
    for chunk in chunks(items):
        finished.update(
            ("task", str(i))
            for i in conn.scalars(
                select(TaskNode.id)
                .join(Issue, Issue.id == TaskNode.issue_id)
                .where(
                    TaskNode.id.in_(chunk), TaskNode.done.is_(True) | (Issue.stage == Stage.closed)
                )
            )
        )
    for chunk in chunks(issues):
        finished.update(
            ("issue", n)
            for n in conn.scalars(
                select(Issue.number).where(Issue.number.in_(chunk), Issue.stage == Stage.closed)
            )
        )
    by_colour = Counter(str(getattr(c, "value", c)) for c, _, _ in late)
    return {
        "red": int(red),
        "interviewed": int(interviewed),
        "escalated": int(escalated),
        "warnings_late": dict(by_colour),
        "warnings_late_settled": sum((kind, str(s)) in finished for _, kind, s in late),
    }


def attention_counts(frames: Frames, matters: dict) -> dict:
    """The counts behind the key points: unresolved real emergencies (from the review's
    frames), and `matters` (open_matters: the red items among them)."""
    emergencies = frames.emergencies
    return {
        **matters,
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
        if settled := counts.get("warnings_late_settled"):
            points.append(t("points.warnings_settled", n=settled))
    if counts["emergencies_open"]:
        points.append(t("points.emergencies_open", n=counts["emergencies_open"]))
    overdue = sum(s["overdue"] for s in current.details.get("stages", []))
    if overdue:
        points.append(t("points.stages_overdue", n=overdue))
    budget = current.details.get("budget")
    if budget and not budget["approved_fen"] and budget["spent_fen"]:
        # No rate to give, but money went out with no approved line: a matter for the
        # meeting, not a "—" (an operator trial).
        (spent,) = format_yuan_alike([budget["spent_fen"]], t("lang"))
        points.append(t("points.spent_without_lines", year=budget["year"], spent=spent))
    if not points:
        points.append(t("points.none"))
    rate = current.kpis.get("budget_execution_rate")
    if budget and budget["approved_fen"] and rate is not None and rate.value is not None:
        # In one unit, both in 万元 or both in 元 (format_yuan_alike).
        approved, spent = format_yuan_alike(
            [budget["approved_fen"], budget["spent_fen"]], t("lang")
        )
        points.append(
            t(
                "points.budget",
                year=budget["year"],
                rate=fmt_percent(rate.value),
                elapsed=fmt_percent(share_of_year(period.last_day)),
                day=period.last_day.isoformat(),
                approved=approved,
                spent=spent,
            )
        )
        # A missing export reads as "nothing spent": say how far the ledger goes when it has
        # no entry in the period's last month (a few quiet days are not worth a line).
        recorded_to = budget.get("recorded_to")
        last_month = max(period.first_day, period.last_day.replace(day=1))
        if recorded_to is None:
            points.append(t("points.ledger_empty", year=budget["year"]))
        elif recorded_to < last_month:
            points.append(
                t(
                    "points.ledger_behind",
                    day=recorded_to.isoformat(),
                    end=period.last_day.isoformat(),
                )
            )
    return points
