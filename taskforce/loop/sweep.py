"""The weekly dispatch sweep (周调度) and the task cockpit (任务驾驶舱).

Set-based: one query reads every open action item's needed columns into
pandas, colours are computed as vectors, changed rows are written in one bulk
UPDATE. Warnings and notifications go out once per cause: a second run with
nothing changed writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import String, func, select, type_coerce, update
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.context import Context
from taskforce.emergency.warnings import raise_warnings
from taskforce.idempotency import CommandRecord
from taskforce.loop.colours import colours_frame
from taskforce.loop.feedback import turned_red_events
from taskforce.loop.models import Colour, Issue, ProgressReport, Stage, TaskLevel, TaskNode
from taskforce.org.models import Unit

OVERDUE_STAGE_LABEL = {
    Stage.reported: "coordination not held",
    Stage.coordinating: "coordination not concluded",
    Stage.planning: "plan not filed",
    Stage.evaluating: "evaluation pending",
}


# Ids per IN (...) list: SQLite refuses more than 32,766 bound parameters in its default
# build, and a full-size sweep has hundreds of thousands of lagging items.
IN_CHUNK = 30_000


def _chunks(ids: list[int], size: int = IN_CHUNK):
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


@dataclass
class SweepResult:
    items: int = 0
    colours: dict[str, int] = field(default_factory=dict)
    recoloured: int = 0
    newly_red: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    overdue_stages: list[dict] = field(default_factory=list)
    new_overdue: int = 0
    cockpit: pd.DataFrame | None = None
    deviation: pd.DataFrame | None = None

    def summary(self) -> dict:
        return {
            "items": self.items,
            "colours": self.colours,
            "recoloured": self.recoloured,
            "newly_red": len(self.newly_red),
            "escalated": len(self.escalated),
            "overdue_stages": len(self.overdue_stages),
            "new_overdue_warnings": self.new_overdue,
        }


def _open_items(session: Session) -> pd.DataFrame:
    query = (
        select(
            TaskNode.id,
            TaskNode.issue_id,
            TaskNode.title,
            TaskNode.owner_unit_id,
            TaskNode.start_date,
            TaskNode.due_date,
            TaskNode.progress_percent.label("percent"),
            TaskNode.done,
            TaskNode.colour,
            # Raw values, parsed below by pandas in one vectorised pass: SQLAlchemy's
            # per-value datetime processing was a third of reading 1,000,000 items.
            type_coerce(TaskNode.colour_since, String).label("colour_since"),
            type_coerce(TaskNode.interview_requested_at, String).label("interview_requested_at"),
            type_coerce(TaskNode.escalated_at, String).label("escalated_at"),
        )
        .join(Issue, Issue.id == TaskNode.issue_id)
        .where(
            TaskNode.level == TaskLevel.action_item,
            TaskNode.done.is_(False),
            Issue.stage == Stage.executing,
        )
    )
    frame = pd.read_sql(query, session.connection())
    frame["colour"] = frame["colour"].astype(str).str.replace("Colour.", "", regex=False)
    for col in ("colour_since", "interview_requested_at", "escalated_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601")
    frame["start_date"] = frame["start_date"].fillna(frame["due_date"])
    return frame


def dispatch_sweep(session: Session, ctx: Context, *, actor: str = "dispatch-sweep") -> SweepResult:
    now, today = ctx.now(), ctx.today()
    rules = ctx.policy.progress
    result = SweepResult()
    items = _open_items(session)
    result.items = len(items)
    if len(items):
        new = colours_frame(items, today, rules)
        changed = new != items["colour"]
        if changed.any():
            ids = items.loc[changed, "id"].to_numpy()
            colours = new[changed].to_numpy()
            session.execute(
                update(TaskNode),
                [
                    {"id": int(i), "colour": Colour(c), "colour_since": now}
                    for i, c in zip(ids, colours, strict=True)
                ],
            )
            events.record(
                session,
                ctx.policy,
                at=now,
                actor=actor,
                action="sweep.recoloured",
                subject_type="sweep",
                subject_id=today.isoformat(),
                payload={"changes": {str(int(i)): c for i, c in zip(ids, colours, strict=True)}},
            )
            items.loc[changed, "colour_since"] = pd.Timestamp(now)
            result.recoloured = int(changed.sum())
        items["colour"] = new
        result.colours = {c.value: int((new == c.value).sum()) for c in Colour}
        _handle_red(session, ctx, items, result, actor)
    _overdue_stages(session, ctx, result, actor)
    result.cockpit, result.deviation = cockpit(session, ctx, items)
    return result


def _handle_red(
    session: Session, ctx: Context, items: pd.DataFrame, result: SweepResult, actor: str
) -> None:
    now = ctx.now()
    red = items[items["colour"] == Colour.red.value]
    if red.empty:
        return
    window = pd.Timedelta(days=ctx.policy.progress.red_escalation_days)
    fresh = red[red["interview_requested_at"].isna()]
    overdue = red[red["escalated_at"].isna() & (red["colour_since"] <= pd.Timestamp(now) - window)]
    # Only the issues of items that need a notification: loading every red item's issue as
    # an ORM object cost seconds at 1,000,000 items (benchmarks/RESULTS.md).
    wanted = pd.concat([fresh["issue_id"], overdue["issue_id"]]).unique().tolist()
    issues = {
        i.id: i
        for chunk in _chunks(wanted)
        for i in session.scalars(select(Issue).where(Issue.id.in_(chunk)))
    }
    owners = dict(session.execute(select(Unit.id, Unit.code)).all())
    # Every notification of the sweep is recorded set-based (events.record_many): one row at
    # a time, tens of thousands of them took minutes at 1,000,000 items (benchmarks/RESULTS.md).
    records: list[dict] = []
    if not fresh.empty:
        session.execute(
            update(TaskNode), [{"id": int(i), "interview_requested_at": now} for i in fresh["id"]]
        )
        for row in fresh.itertuples():
            records += turned_red_events(
                ctx,
                issues[row.issue_id],
                int(row.id),
                row.title,
                owners.get(row.owner_unit_id),
                actor=actor,
            )
        result.newly_red = [int(i) for i in fresh["id"]]
    if overdue.empty:
        events.record_many(session, ctx.policy, records)
        return
    session.execute(update(TaskNode), [{"id": int(i), "escalated_at": now} for i in overdue["id"]])
    warnings = []
    for row in overdue.itertuples():
        issue = issues[row.issue_id]
        records.append(
            {
                "at": now,
                "actor": actor,
                "action": "item.escalated",
                "subject_type": "task",
                "subject_id": int(row.id),
                "classification": issue.classification,
                "notify": "escalation",
                "payload": {"issue": issue.number, "red_since": row.colour_since.to_pydatetime()},
                "context": {
                    "issue": issue.number,
                    "title": issue.title,
                    "item": row.title,
                    "red_days": ctx.policy.progress.red_escalation_days,
                },
            }
        )
        warnings.append(
            {
                "colour": "orange",
                "source": "sweep",
                "subject_type": "task",
                "subject_id": int(row.id),
                "classification": issue.classification,
                "actor": actor,
                "title": f"{issue.number}: action item {row.id} red for more than "
                f"{ctx.policy.progress.red_escalation_days} days",
                "dedup_key": f"task:{int(row.id)}:red-escalation",
            }
        )
    events.record_many(session, ctx.policy, records)
    raise_warnings(session, ctx, warnings)
    result.escalated = [int(i) for i in overdue["id"]]


def _overdue_stages(session: Session, ctx: Context, result: SweepResult, actor: str) -> None:
    now = ctx.now()
    rows = session.execute(
        select(
            Issue.id,
            Issue.number,
            Issue.title,
            Issue.stage,
            Issue.round,
            Issue.stage_due_at,
            Issue.classification,
        ).where(Issue.stage.in_(list(OVERDUE_STAGE_LABEL)), Issue.stage_due_at < now)
    ).all()
    keys = {f"overdue:{r.number}:{Stage(r.stage).value}:{r.round}": r for r in rows}
    seen = {
        k
        for chunk in _chunks(list(keys))
        for k in session.scalars(select(CommandRecord.key).where(CommandRecord.key.in_(chunk)))
    }
    records, commands = [], []
    for key, r in keys.items():
        stage = Stage(r.stage)
        late = now - r.stage_due_at
        result.overdue_stages.append(
            {
                "issue": r.number,
                "stage": stage.value,
                "what": OVERDUE_STAGE_LABEL[stage],
                "due": r.stage_due_at.isoformat(),
                "late_days": late.days,
            }
        )
        if key in seen:
            continue
        commands.append(
            CommandRecord(key=key, command="sweep.overdue", result={"stage": stage.value}, at=now)
        )
        records.append(
            {
                "at": now,
                "actor": actor,
                "action": "stage.overdue",
                "subject_type": "issue",
                "subject_id": r.number,
                "classification": r.classification,
                "notify": "stage_overdue",
                "payload": {"stage": stage.value, "due": r.stage_due_at, "round": r.round},
                "context": {
                    "issue": r.number,
                    "title": r.title,
                    "what": OVERDUE_STAGE_LABEL[stage],
                    "due": r.stage_due_at.isoformat(),
                },
            }
        )
        result.new_overdue += 1
    session.add_all(commands)
    events.record_many(session, ctx.policy, records)
    session.flush()


def cockpit(
    session: Session, ctx: Context, items: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cockpit table and the deviation analysis (偏差分析) of late and behind items."""
    today = ctx.today()
    if items is None:
        items = _open_items(session)
        if len(items):
            items["colour"] = colours_frame(items, today, ctx.policy.progress)
    columns = [
        "issue",
        "item_id",
        "item",
        "owner",
        "due",
        "colour",
        "percent",
        "expected",
        "deviation",
        "days_late",
    ]
    if items.empty:
        return pd.DataFrame(columns=columns), pd.DataFrame(columns=[*columns, "reason"])
    issues = pd.DataFrame(
        [
            row
            for chunk in _chunks(items["issue_id"].unique().tolist())
            for row in session.execute(
                select(Issue.id, Issue.number).where(Issue.id.in_(chunk))
            ).all()
        ],
        columns=["issue_id", "issue"],
    )
    units = pd.DataFrame(
        session.execute(select(Unit.id, Unit.name)).all(), columns=["owner_unit_id", "owner"]
    )
    frame = items.merge(issues, on="issue_id", how="left").merge(
        units, on="owner_unit_id", how="left"
    )
    start = pd.to_datetime(frame["start_date"]).to_numpy("datetime64[D]")
    due = pd.to_datetime(frame["due_date"]).to_numpy("datetime64[D]")
    now = np.datetime64(today, "D")
    span = np.maximum((due - start).astype("int64"), 1)
    frame["expected"] = (
        np.clip((now - start).astype("int64") * 100 / span, 0, 100).round().astype(int)
    )
    frame["deviation"] = frame["percent"] - frame["expected"]
    frame["days_late"] = np.maximum((now - due).astype("int64"), 0)
    frame = frame.rename(columns={"id": "item_id", "title": "item", "due_date": "due"})
    table = frame[columns].sort_values(
        ["colour", "days_late", "deviation"],
        ascending=[True, False, True],
        key=lambda s: s.map({"red": 0, "yellow": 1, "green": 2}) if s.name == "colour" else s,
    )
    lagging = table[table["colour"] != Colour.green.value]
    if lagging.empty:
        return table.reset_index(drop=True), pd.DataFrame(columns=[*columns, "reason"])
    rows = []
    for chunk in _chunks(lagging["item_id"].astype(int).tolist()):
        latest = (
            select(ProgressReport.task_id, func.max(ProgressReport.id).label("pid"))
            .where(ProgressReport.task_id.in_(chunk))
            .group_by(ProgressReport.task_id)
            .subquery()
        )
        rows += session.execute(
            select(latest.c.task_id, ProgressReport.note).join(
                ProgressReport, ProgressReport.id == latest.c.pid
            )
        ).all()
    notes = pd.DataFrame(rows, columns=["item_id", "reason"])
    deviation = lagging.merge(notes, on="item_id", how="left")
    deviation["reason"] = deviation["reason"].fillna("").replace("", "(no progress report)")
    return table.reset_index(drop=True), deviation.reset_index(drop=True)


def stage_of_issues(session: Session) -> pd.DataFrame:
    """Which issues wait for which step, and since when — for operators at a glance."""
    from taskforce.loop.states import NEXT_STEP

    frame = pd.read_sql(
        select(Issue.number, Issue.title, Issue.stage, Issue.stage_entered_at, Issue.stage_due_at)
        .where(Issue.stage != Stage.closed)
        .order_by(Issue.stage_entered_at),
        session.connection(),
    )
    frame["stage"] = frame["stage"].astype(str).str.replace("Stage.", "", regex=False)
    frame["waits_for"] = frame["stage"].map(lambda s: NEXT_STEP[Stage(s)])
    return frame
