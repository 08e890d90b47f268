"""What a review shows besides its KPIs: the lists of records, read with SQL and cleared
for the report's audience in the WHERE clause (a record the audience may not read is
never loaded), plus the ledgers of the XLSX workbook."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Connection, and_, case, func, select
from sqlalchemy.orm import aliased

from taskforce.budget.models import AuditFinding, BudgetLine, LedgerEntry
from taskforce.bulk import chunks
from taskforce.emergency.models import Emergency
from taskforce.kpi.frames import days, flags, instants, raw_frame
from taskforce.loop.colours import colour_sql
from taskforce.loop.models import Colour, Evaluation, Issue, Plan, Stage, TaskLevel, TaskNode
from taskforce.money import to_yuan
from taskforce.org.models import Unit
from taskforce.policy.schema import Classification, Policy, Progress
from taskforce.registers.models import CaseLesson, Milestone, Risk
from taskforce.registers.service import risk_colour
from taskforce.reports.audience import WITHHELD, cleared_for
from taskforce.reviews.periods import Period


def _records(
    conn: Connection, stmt, *, local: tuple[str, ...] = (), timezone: str = "UTC"
) -> list[dict]:
    """The rows of a select as dicts; the `local` instant columns as local "YYYY-MM-DD HH:MM"
    texts (a whole column at a time: a quarter has thousands of emergencies)."""
    frame = pd.read_sql(stmt, conn)
    for col in local:
        stamps = pd.to_datetime(frame[col], utc=True).dt.tz_convert(ZoneInfo(timezone))
        frame[col] = stamps.dt.strftime("%Y-%m-%d %H:%M").astype(object).where(stamps.notna())
    return [
        {k: (None if _na(v) else (str(v) if hasattr(v, "value") else v)) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def _na(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _local(instant, timezone: str) -> str | None:
    if instant is None:
        return None
    return pd.Timestamp(instant).tz_convert(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def _day(value) -> str | None:
    return None if value is None else pd.Timestamp(value).date().isoformat()


def overdue_issues(conn, policy: Policy, audience: Classification, now: dt.datetime) -> list[dict]:
    rows = _records(
        conn,
        select(
            Issue.number,
            Issue.title,
            Issue.stage,
            Issue.stage_due_at,
            Issue.classification,
            Unit.name.label("unit_zh"),
            Unit.name_en.label("unit_en"),
        )
        .join(Unit, Unit.id == Issue.lead_unit_id)
        .where(
            Issue.stage != Stage.closed,
            Issue.stage_due_at < now,
            Issue.classification.in_(cleared_for(audience)),
        )
        .order_by(Issue.stage_due_at, Issue.number),
    )
    for r in rows:
        r["stage_due"] = _local(r.pop("stage_due_at"), policy.timezone)
    return rows


def lagging_items(conn, audience: Classification, today: dt.date, progress: Progress) -> list[dict]:
    """Open action items that are red or yellow today (colours.colour_sql), red first."""
    colour = colour_sql(today, progress)
    rows = _records(
        conn,
        select(
            Issue.number,
            Issue.classification,
            TaskNode.title,
            colour.label("colour"),
            TaskNode.due_date,
            TaskNode.progress_percent.label("progress"),
            Unit.name.label("unit_zh"),
            Unit.name_en.label("unit_en"),
        )
        .join(Issue, Issue.id == TaskNode.issue_id)
        .outerjoin(Unit, Unit.id == TaskNode.owner_unit_id)
        .where(
            TaskNode.level == TaskLevel.action_item,
            TaskNode.done.is_(False),
            colour.in_([Colour.red.value, Colour.yellow.value]),
            Issue.classification.in_(cleared_for(audience)),
        )
        .order_by(TaskNode.due_date, TaskNode.id),
    )
    for r in rows:
        r["due"] = _day(r.pop("due_date"))
    # red before yellow ("red" < "yellow" alphabetically as well, but say it)
    rows.sort(key=lambda r: (r["colour"] != "red", r["due"] or ""))
    return rows


def reallocation(lagging: list[dict]) -> list[dict]:
    """Units with the most lagging items: where resources are short."""
    counts: dict[tuple, dict] = {}
    for r in lagging:
        key = (r["unit_zh"], r["unit_en"])
        entry = counts.setdefault(
            key, {"unit_zh": key[0], "unit_en": key[1], "red": 0, "yellow": 0}
        )
        entry[r["colour"]] += 1
    return sorted(counts.values(), key=lambda e: (-e["red"], -e["yellow"], e["unit_en"] or ""))


def milestones(
    conn, period: Period, audience: Classification, today: dt.date, policy
) -> list[dict]:
    """Milestones due in the period, and earlier ones still not achieved."""
    from taskforce.registers.service import milestone_colour

    rows = _records(
        conn,
        select(
            Milestone.code,
            Milestone.title,
            Milestone.kind,
            Milestone.due_date,
            Milestone.achieved,
            Milestone.achieved_on,
            Milestone.classification,
        )
        .where(
            Milestone.classification.in_(cleared_for(audience)),
            Milestone.due_date <= period.last_day,
            (Milestone.due_date >= period.first_day) | Milestone.achieved.is_(False),
        )
        .order_by(Milestone.due_date, Milestone.code),
    )
    for r in rows:
        due = pd.Timestamp(r["due_date"]).date()
        r["colour"] = milestone_colour(
            achieved=bool(r["achieved"]), due_date=due, today=today, policy=policy
        ).value
        r["due_date"] = due.isoformat()
        r["achieved_on"] = _day(r["achieved_on"])
        r["state"] = r["achieved_on"] if r["achieved"] else None
    return rows


def open_findings(conn, period: Period, audience: Classification) -> list[dict]:
    """Findings open at the period's end. Findings carry no classification: internal."""
    if not Classification.internal.readable_by(audience):
        return []
    last_week = period.iso_weeks()[-1]
    rows = _records(
        conn,
        select(
            AuditFinding.check_name.label("check"),
            AuditFinding.severity,
            AuditFinding.owner,
            AuditFinding.subject_type,
            AuditFinding.subject_id,
            AuditFinding.first_seen_week.label("first_seen"),
        )
        .where(
            AuditFinding.first_seen_week <= last_week,
            (AuditFinding.resolved.is_(False)) | (AuditFinding.resolved_week > last_week),
        )
        .order_by(AuditFinding.first_seen_week, AuditFinding.id),
    )
    for r in rows:
        r["subject"] = f"{r.pop('subject_type')}:{r.pop('subject_id')}"
    return rows


def risks(conn, policy: Policy, audience: Classification) -> list[dict]:
    rows = _records(
        conn,
        select(
            Risk.code,
            Risk.title,
            Risk.category,
            Risk.probability,
            Risk.impact,
            Risk.strategy,
            Risk.plan,
            Risk.classification,
            Unit.name.label("unit_zh"),
            Unit.name_en.label("unit_en"),
        )
        .join(Unit, Unit.id == Risk.owner_unit_id)
        .where(Risk.classification.in_(cleared_for(audience)))
        .order_by((Risk.probability * Risk.impact).desc(), Risk.code),
    )
    for r in rows:
        r["probability"], r["impact"] = int(r["probability"]), int(r["impact"])
        r["score"] = r["probability"] * r["impact"]
        r["colour"] = risk_colour(r["score"], policy) or "green"
    return rows


def typical_cases(conn, period: Period, policy: Policy, audience: Classification, limit: int = 5):
    """Issues closed in the period, best evaluated first (运行白皮书: typical cases)."""
    latest = (
        select(Evaluation.issue_id, func.max(Evaluation.round).label("round"))
        .group_by(Evaluation.issue_id)
        .subquery()
    )
    ev = aliased(Evaluation)
    return _records(
        conn,
        select(Issue.number, Issue.title, Issue.classification, ev.satisfaction, ev.lessons)
        .join(latest, latest.c.issue_id == Issue.id)
        .join(ev, and_(ev.issue_id == latest.c.issue_id, ev.round == latest.c.round))
        .where(
            Issue.closed_at >= period.starts_at(policy.timezone),
            Issue.closed_at < period.ends_at(policy.timezone),
            Issue.classification.in_(cleared_for(audience)),
        )
        .order_by(ev.satisfaction.desc(), Issue.number)
        .limit(limit),
    )


def lessons(
    conn, audience: Classification, *, exclude_source: str, before: dt.datetime, limit: int
):
    """The case library as the review shows it: earlier lessons, newest first."""
    return _records(
        conn,
        select(CaseLesson.title, CaseLesson.lesson, CaseLesson.source, CaseLesson.classification)
        .where(
            CaseLesson.classification.in_(cleared_for(audience)),
            CaseLesson.source != exclude_source,
            CaseLesson.created_at <= before,
        )
        .order_by(CaseLesson.created_at.desc(), CaseLesson.id.desc())
        .limit(limit),
    )


def issues_by_number(conn, numbers: list[str], audience: Classification) -> list[dict]:
    if not numbers:
        return []
    rows = _records(
        conn,
        select(Issue.number, Issue.title, Issue.classification).where(
            Issue.number.in_(numbers), Issue.classification.in_(cleared_for(audience))
        ),
    )
    order = {n: i for i, n in enumerate(numbers)}
    return sorted(rows, key=lambda r: order[r["number"]])


# --- the XLSX ledgers ------------------------------------------------------------------


def task_ledger(
    conn,
    audience: Classification,
    period: Period | None = None,
    *,
    today: dt.date,
    progress: Progress,
    timezone: str = "UTC",
) -> pd.DataFrame:
    """任务台账: the task nodes of the issues the audience may read, with today's colours
    (colours.colour_sql; goals and sub-projects show their open items' worst).

    With a period, only the period's items (the review's ledger, a meeting document): nodes
    due in the period (first_day <= due_date <= last_day) or completed in it (completed_at
    in [local midnight of first_day, local midnight after last_day), local = `timezone`).
    Without one, every node (the on-demand export, `taskforce review export-ledger`).
    """
    where = [Issue.classification.in_(cleared_for(audience))]
    if period is not None:
        where.append(
            TaskNode.due_date.between(period.first_day, period.last_day)
            | (
                (TaskNode.completed_at >= period.starts_at(timezone))
                & (TaskNode.completed_at < period.ends_at(timezone))
            )
        )
    frame = raw_frame(
        conn,
        select(
            TaskNode.id.label("node_id"),
            Issue.number.label("issue"),
            Issue.title.label("issue_title"),
            TaskNode.level,
            TaskNode.title.label("task"),
            Unit.name.label("owner_zh"),
            Unit.name_en.label("owner_en"),
            TaskNode.start_date.label("start"),
            TaskNode.due_date.label("due"),
            TaskNode.progress_percent.label("progress"),
            TaskNode.done,
            TaskNode.completed_at.label("completed"),
            colour_sql(today, progress).label("colour"),
            # Which plan: a loop-back files a new plan, and the old one's rows stay listed.
            Plan.round.label("plan_round"),
        )
        .join(Issue, Issue.id == TaskNode.issue_id)
        .join(Plan, Plan.id == TaskNode.plan_id)
        .outerjoin(Unit, Unit.id == TaskNode.owner_unit_id)
        .where(*where)
        .order_by(Issue.number, TaskNode.id),
    )
    for col in ("start", "due"):
        frame[col] = _date_objects(frame[col])
    frame["progress"] = pd.to_numeric(frame["progress"])
    frame["done"] = flags(frame["done"])
    frame["completed"] = instants(frame["completed"])
    _roll_up(conn, frame, colour_sql(today, progress))
    frame["plan_round"] = pd.to_numeric(frame["plan_round"])
    # A finished row has no light: its last colour (green, or the red it was late with)
    # would read as a state it is no longer in.
    frame.loc[frame["done"], "colour"] = None
    return frame.drop(columns="node_id")


_COLOUR_OF_RANK = {0: Colour.green.value, 1: Colour.yellow.value, 2: Colour.red.value}


def _roll_up(conn, frame: pd.DataFrame, colour) -> None:
    """Goals and sub-projects carry no progress of their own (only action items are
    reported on): their rows show their action items' — mean progress, done when every one
    is done (completed with the last), and the worst colour among the open ones.

    Only the nodes the ledger lists are rolled up, through the parent_id index: a period's
    ledger lists a fraction of them (migration 0006_task_parent)."""
    level = frame["level"]
    goals = frame.loc[level == TaskLevel.goal.value, "node_id"].astype(int).tolist()
    subs = set(frame.loc[level == TaskLevel.sub_project.value, "node_id"].astype(int))
    if not goals and not subs:
        return
    goal_of: dict[int, int] = {}  # sub-project id -> its goal's id, for the listed goals
    for chunk in chunks(goals):
        goal_of.update(
            conn.execute(
                select(TaskNode.id, TaskNode.parent_id).where(
                    TaskNode.parent_id.in_(chunk), TaskNode.level == TaskLevel.sub_project
                )
            ).all()
        )
    item_done = case((TaskNode.done.is_(True), 1), else_=0)
    worst_open = func.max(
        case(
            (TaskNode.done.is_(True), 0),
            (colour == Colour.red.value, 2),
            (colour == Colour.yellow.value, 1),
            else_=0,
        )
    )
    rows = []
    for chunk in chunks(sorted(subs | goal_of.keys())):
        rows += conn.execute(
            select(
                TaskNode.parent_id,
                func.sum(TaskNode.progress_percent),
                func.count(),
                func.sum(item_done),
                func.max(TaskNode.completed_at),
                worst_open,
            )
            .where(TaskNode.parent_id.in_(chunk), TaskNode.level == TaskLevel.action_item)
            .group_by(TaskNode.parent_id)
        ).all()
    per_sub = pd.DataFrame(
        [tuple(r) for r in rows], columns=["node_id", "total", "count", "done", "last", "rank"]
    )
    if per_sub.empty:
        return
    for col in ("total", "count", "done", "rank"):  # PostgreSQL sums as Decimal
        per_sub[col] = pd.to_numeric(per_sub[col]).astype("int64")
    per_sub["last"] = instants(per_sub["last"])
    per_goal = (
        per_sub[per_sub["node_id"].isin(goal_of.keys())]
        .assign(node_id=lambda f: f["node_id"].map(goal_of))
        .groupby("node_id", as_index=False)
        .agg({"total": "sum", "count": "sum", "done": "sum", "last": "max", "rank": "max"})
    )
    rolled = pd.concat([per_sub[per_sub["node_id"].isin(subs)], per_goal]).set_index("node_id")
    shown = frame.index[frame["node_id"].isin(rolled.index)]
    mine = rolled.loc[frame.loc[shown, "node_id"].astype(int)]
    all_done = (mine["done"] == mine["count"]).to_numpy()
    # Half up, as people round a percentage (62.5 → 63; numpy would give 62).
    mean = np.floor(mine["total"].to_numpy() / mine["count"].to_numpy() + 0.5).astype(int)
    frame.loc[shown, "progress"] = mean
    frame.loc[shown, "done"] = all_done
    frame.loc[shown, "colour"] = [_COLOUR_OF_RANK[int(r)] for r in mine["rank"]]
    # Built whole and of one type: writing times into a column pandas gave another unit
    # (all missing, say) can fail.
    completed = pd.Series(frame["completed"].to_numpy(), index=frame.index, dtype=object)
    completed[shown[all_done]] = mine["last"].to_numpy(dtype=object)[all_done]
    frame["completed"] = instants(completed)


def _date_objects(column: pd.Series) -> pd.Series:
    """Stored dates as datetime.date (what the workbook formats as a date), missing None."""
    if column.empty:
        return column
    parsed = days(column)
    out = parsed.dt.date.astype(object)
    out[parsed.isna()] = None
    return out


def budget_ledger(conn, period: Period | None, audience: Classification) -> pd.DataFrame:
    """资金台账: ledger entries of lines the audience may read.

    With a period, only the entries dated in it (first_day <= entry_date <= last_day; an
    entry's date is already a local calendar date); without one, every entry (the export).
    Spending without a line carries no classification of its own: internal.
    """
    allowed = cleared_for(audience)
    line_ok = BudgetLine.classification.in_(allowed)
    if Classification.internal in allowed:
        line_ok = line_ok | LedgerEntry.line_id.is_(None)
    where = [line_ok]
    if period is not None:
        where.append(LedgerEntry.entry_date.between(period.first_day, period.last_day))
    # A reserve draw's text is its emergency's too (by default "emergency <id>: <title>"):
    # above the audience, the amount stays (the line's execution adds up) and the text is
    # withheld. The reserve line itself is internal; a secret emergency's title was listed
    # in an internal review's workbook (a classification audit).
    emergency_hidden = and_(
        LedgerEntry.emergency_id.is_not(None), Emergency.classification.not_in(allowed)
    )
    frame = raw_frame(
        conn,
        select(
            LedgerEntry.entry_date.label("date"),
            BudgetLine.code.label("line"),
            BudgetLine.purpose,
            LedgerEntry.kind,
            LedgerEntry.amount_fen,
            case((emergency_hidden, WITHHELD), else_=LedgerEntry.payee).label("payee"),
            case((emergency_hidden, WITHHELD), else_=LedgerEntry.description).label("description"),
        )
        .outerjoin(BudgetLine, BudgetLine.id == LedgerEntry.line_id)
        .outerjoin(Emergency, Emergency.id == LedgerEntry.emergency_id)
        .where(*where)
        .order_by(LedgerEntry.entry_date, LedgerEntry.id),
    )
    frame["date"] = _date_objects(frame["date"])
    frame["amount"] = frame.pop("amount_fen").map(lambda fen: to_yuan(int(fen)))
    return frame


def warnings_in_period(conn, period: Period, policy: Policy, audience: Classification):
    from taskforce.emergency.models import EarlyWarning

    tz = policy.timezone
    rows = _records(
        conn,
        select(
            EarlyWarning.colour,
            EarlyWarning.title,
            EarlyWarning.status,
            EarlyWarning.raised_at,
            EarlyWarning.deadline_at,
            EarlyWarning.handled_at,
            EarlyWarning.classification,
        )
        .where(
            EarlyWarning.raised_at >= period.starts_at(tz),
            EarlyWarning.raised_at < period.ends_at(tz),
            EarlyWarning.classification.in_(cleared_for(audience)),
        )
        .order_by(EarlyWarning.raised_at, EarlyWarning.id),
    )
    for r in rows:
        r["on_time"] = r["handled_at"] is not None and r["handled_at"] <= r["deadline_at"]
        for col in ("raised_at", "deadline_at", "handled_at"):
            r[col] = _local(r[col], tz)
    return rows


def emergencies_in_period(conn, period: Period, policy: Policy, audience: Classification):
    from taskforce.emergency.models import Emergency

    tz = policy.timezone
    rows = _records(
        conn,
        select(
            Emergency.level,
            Emergency.title,
            Emergency.status,
            Emergency.is_drill,
            Emergency.opened_at,
            Emergency.acknowledged_at,
            Emergency.resolved_at,
            Emergency.classification,
        )
        .where(
            Emergency.opened_at >= period.starts_at(tz),
            Emergency.opened_at < period.ends_at(tz),
            Emergency.classification.in_(cleared_for(audience)),
        )
        .order_by(Emergency.opened_at, Emergency.id),
        local=("opened_at", "acknowledged_at", "resolved_at"),
        timezone=tz,
    )
    return rows
