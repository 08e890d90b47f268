"""Step 4, 执行反馈: progress on action items, their colours, and the red-item warning."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.context import Context
from taskforce.emergency.warnings import settle_warnings
from taskforce.errors import DomainError, IllegalTransition, NotFound
from taskforce.idempotency import fingerprint, previous_result, remember
from taskforce.loop.colours import colour_of, next_red_step_on
from taskforce.loop.forms import ProgressForm, StepResult
from taskforce.loop.models import Colour, Issue, ProgressReport, Stage, TaskLevel, TaskNode
from taskforce.loop.states import load_issue, move, require_step
from taskforce.loop.sweep_state import dates_written
from taskforce.org.models import Unit
from taskforce.org.service import active_member
from taskforce.reports.audience import PREFECT_UI_CLEARANCE


def turned_red_events(
    ctx: Context,
    issue: Issue,
    item_id: int,
    title: str,
    owner: Unit | None,
    working_group: str | None = None,
    *,
    actor: str = "system",
) -> list[dict]:
    """The two events of an item turning red, as `events.record` keyword arguments."""
    owner_code = owner.code if owner else None
    common = {
        "issue": issue.number,
        "title": issue.title,
        "item": title,
        "item_id": item_id,
        "owner": owner_code,
        # Messages name the unit in the reader's language, not by its code.
        "owner_name": owner.name if owner else None,
        "owner_name_en": owner.name_en if owner else None,
        "working_group": working_group,
    }
    return [
        {
            "at": ctx.now(),
            "actor": actor,
            "action": action,
            "subject_type": "task",
            "subject_id": item_id,
            "classification": issue.classification,
            "notify": kind,
            "payload": {"issue": issue.number, "owner": owner_code},
            "context": common,
        }
        for action, kind in (
            ("item.turned_red", "item_turned_red"),
            ("item.interview_requested", "interview_requested"),
        )
    ]


def notify_turned_red(
    session: Session,
    ctx: Context,
    issue: Issue,
    item_id: int,
    title: str,
    owner: Unit | None,
    working_group: str | None = None,
    *,
    actor: str = "system",
) -> None:
    """A red item warns the executive director, who interviews (约谈) the owner's unit."""
    for event in turned_red_events(ctx, issue, item_id, title, owner, working_group, actor=actor):
        events.record(session, ctx.policy, **event)


def open_action_items(session: Session, issue_id: int) -> int:
    return (
        session.scalar(
            select(func.count(TaskNode.id)).where(
                TaskNode.issue_id == issue_id,
                TaskNode.level == TaskLevel.action_item,
                TaskNode.done.is_(False),
            )
        )
        or 0
    )


def report_progress(
    session: Session,
    ctx: Context,
    issue_number: str,
    form: ProgressForm,
    *,
    actor: str,
    key: str | None = None,
) -> StepResult:
    form = ProgressForm.model_validate(form.model_dump())
    seen = fingerprint(issue_number, form)
    if (done := previous_result(session, key, seen=seen)) is not None:
        return StepResult.model_validate(done)
    dates_written(session, ctx.policy)  # first: the sweep's lock order (sweep_state.py)
    issue = load_issue(session, issue_number)
    require_step(issue, "progress")
    item = session.get(TaskNode, form.task_id, with_for_update=True)
    if item is None or item.issue_id != issue.id or item.level != TaskLevel.action_item:
        raise NotFound(
            f"no action item {form.task_id} in {issue.number}",
            field="task_id",
            allowed=_open_items(session, issue),
        )
    if item.done:
        raise IllegalTransition(f"action item {item.id} is already complete", field="task_id")
    # Who reported is on the record (and the trail): a member the office knows, not free
    # text (an operator trial recorded "nobody-at-all 🙃").
    active_member(session, form.reported_by, field="reported_by")
    if form.percent < item.progress_percent and not form.note.strip():
        # Progress going back is news for the office (rework, a wrong earlier figure): it is
        # taken, but with its reason on the trail, not as a silent correction.
        raise DomainError(
            f"{form.percent}% is below the {item.progress_percent}% last reported for action "
            f"item {item.id}, and no note says why",
            field="note",
            allowed="a note giving the reason (进度回退说明), "
            f"or a percent of {item.progress_percent} or more",
        )
    now, today = ctx.now(), ctx.today()
    session.add(
        ProgressReport(
            task_id=item.id,
            reported_at=now,
            percent=form.percent,
            note=form.note,
            reported_by=form.reported_by,
            idempotency_key=key,
        )
    )
    rule = {
        "start": item.start_date or today,
        "due": item.due_date,
        "today": today,
        "rules": ctx.policy.progress,
    }
    before = colour_of(percent=item.progress_percent, done=item.done, **rule)
    item.progress_percent = form.percent
    if form.percent == 100:
        item.done, item.completed_at = True, now
    colour = colour_of(percent=item.progress_percent, done=item.done, **rule)
    session.flush()
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="progress.reported",
        subject_type="task",
        subject_id=item.id,
        classification=issue.classification,
        payload={
            "issue": issue.number,
            "percent": form.percent,
            "note": form.note,
            "colour": colour.value,
            "was": before.value,
        },
    )
    if item.done:  # its red-item warning, if any, has no cause left
        settle_warnings(
            session, ctx, "task", [item.id], reason="action item completed", actor=actor
        )
    owner = session.get(Unit, item.owner_unit_id)
    # Red and no interview yet (the sweep has not run since it fell due): the report is where
    # the office hears of it first, so the interview is requested now, for this item alone.
    if colour == Colour.red and item.interview_requested_at is None:
        item.interview_requested_at = now
        notify_turned_red(session, ctx, issue, item.id, item.title, owner, actor=actor)
    item.next_action_on = next_red_step_on(
        done=item.done,
        due=item.due_date,
        interview_requested_at=item.interview_requested_at,
        escalated_at=item.escalated_at,
        rules=ctx.policy.progress,
    )
    detail = {"task_id": item.id, "percent": form.percent, "colour": colour.value}
    if open_action_items(session, issue.id) == 0:
        move(issue, Stage.evaluating)
        due = ctx.calendar.add_working_days(today, ctx.policy.loop.evaluation_deadline_working_days)
        issue.stage_entered_at, issue.stage_due_at = now, ctx.end_of(due.due)
        events.record(
            session,
            ctx.policy,
            at=now,
            actor=actor,
            action="issue.ready_for_evaluation",
            subject_type="issue",
            subject_id=issue.number,
            classification=issue.classification,
            calendar_fallback=due.fallback_used,
            payload={"evaluation_due": due.due},
        )
        detail["evaluation_due"] = due.due.isoformat()
    result = StepResult(
        issue_number=issue.number,
        stage=issue.stage.value,
        classification=issue.classification,
        detail=detail,
    )
    remember(session, key, "progress", result.model_dump(), now, seen=seen)
    return result


def _open_items(session: Session, issue: Issue, shown: int = 20) -> str:
    """The ids a progress form may name, with their titles, for the refusal's message."""
    rows = session.execute(
        select(TaskNode.id, TaskNode.title)
        .where(
            TaskNode.issue_id == issue.id,
            TaskNode.level == TaskLevel.action_item,
            TaskNode.done.is_(False),
        )
        .order_by(TaskNode.id)
        .limit(shown + 1)
    ).all()
    if not rows:
        return f"none: {issue.number} has no open action item"
    # Item titles only where the Prefect UI may read them: this refusal is a run's log line
    # and state message there (an operator trial read a secret item's title in it).
    titled = issue.classification.readable_by(PREFECT_UI_CLEARANCE)
    listed = ", ".join(
        f"{row.id} {row.title[:40]}" if titled else str(row.id) for row in rows[:shown]
    )
    more = ", …" if len(rows) > shown else ""
    return f"the open action items of {issue.number}: {listed}{more}"
