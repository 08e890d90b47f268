"""Step 3, 方案制定: the three-level task tree, filed with the leadership group (备案)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.calendar import Deadline
from taskforce.clock import local_date
from taskforce.context import Context
from taskforce.errors import DomainError
from taskforce.idempotency import fingerprint, previous_result, remember
from taskforce.loop.colours import next_red_step_on
from taskforce.loop.forms import PlanForm, StepResult
from taskforce.loop.models import Decision, DecisionStatus, Plan, Stage, TaskLevel, TaskNode
from taskforce.loop.states import load_issue, move, require_step
from taskforce.loop.sweep_state import dates_written
from taskforce.org.models import Unit
from taskforce.org.service import unknown_unit


def plan_due(ctx: Context, decided_on: dt.date, issue_deadline: dt.date | None) -> Deadline:
    """The day a plan is due: within plan_deadline_working_days of the decision (SPEC §2.3,
    the decision day not counted), and never after the issue's own deadline, the day every
    action item must be done by (a plan due after it would plan nothing). Never before the
    decision day either (a vote after the deadline is refused: loop/coordinate.py)."""
    due = ctx.calendar.add_working_days(decided_on, ctx.policy.loop.plan_deadline_working_days)
    if issue_deadline is not None and issue_deadline < due.due:
        # A calendar day, not counted in working days: no holiday data was needed.
        return Deadline(max(issue_deadline, decided_on), fallback_used=False)
    return due


def file_plan(
    session: Session,
    ctx: Context,
    issue_number: str,
    form: PlanForm,
    *,
    actor: str,
    key: str | None = None,
) -> StepResult:
    form = PlanForm.model_validate(form.model_dump())
    seen = fingerprint(issue_number, form)
    if (done := previous_result(session, key, seen=seen)) is not None:
        return StepResult.model_validate(done)
    dates_written(session, ctx.policy)  # first: the sweep's lock order (sweep_state.py)
    issue = load_issue(session, issue_number)
    require_step(issue, "plan")
    today = ctx.today()
    reported_on = local_date(issue.reported_at, ctx.policy.timezone)
    codes = {a.owner_unit for sp in form.sub_projects for a in sp.action_items}
    units = {u.code: u for u in session.scalars(select(Unit).where(Unit.code.in_(codes)))}
    for i, sp in enumerate(form.sub_projects):
        for j, item in enumerate(sp.action_items):
            where = f"sub_projects[{i}].action_items[{j}]"
            if item.owner_unit not in units:
                raise unknown_unit(session, item.owner_unit, f"{where}.owner_unit")
            if item.due_date < today:
                raise DomainError(
                    f"due date {item.due_date} is in the past",
                    field=f"{where}.due_date",
                    allowed=f"{today} or later",
                )
            if issue.deadline and item.due_date > issue.deadline:
                raise DomainError(
                    f"due date {item.due_date} is after the issue deadline {issue.deadline}",
                    field=f"{where}.due_date",
                    allowed=f"{issue.deadline} or earlier",
                )
            start = item.start_date or today
            if start < reported_on:
                # Work on an issue cannot start before it was reported; a start years back
                # (a typed year) would stretch the item's planned 工期 and every KPI on it.
                raise DomainError(
                    f"start {start} is before the issue was reported ({reported_on})",
                    field=f"{where}.start_date",
                    allowed=f"{reported_on} or later",
                )
            if start > item.due_date:
                raise DomainError(
                    f"start {start} is after the due date {item.due_date}",
                    field=f"{where}.start_date",
                )
    now = ctx.now()
    decided = session.scalar(
        select(Decision.decided_at)
        .where(
            Decision.issue_id == issue.id,
            Decision.round == issue.round,
            Decision.status.in_([DecisionStatus.decided, DecisionStatus.passed]),
        )
        .order_by(Decision.id.desc())
        .limit(1)
    )
    decided_on = local_date(decided, ctx.policy.timezone) if decided else today
    due = plan_due(ctx, decided_on, issue.deadline)
    plan = Plan(
        issue_id=issue.id,
        round=issue.round,
        filed_at=now,
        due_date=due.due,
        on_time=today <= due.due,
        filed_with_leadership=True,
        calendar_fallback=due.fallback_used,
    )
    session.add(plan)
    session.flush()
    goal = TaskNode(
        plan_id=plan.id,
        issue_id=issue.id,
        level=TaskLevel.goal,
        title=form.goal,
        due_date=issue.deadline,
    )
    session.add(goal)
    session.flush()
    made: list[TaskNode] = []
    for sp in form.sub_projects:
        node = TaskNode(
            plan_id=plan.id,
            issue_id=issue.id,
            parent_id=goal.id,
            level=TaskLevel.sub_project,
            title=sp.title,
            due_date=max(a.due_date for a in sp.action_items),
        )
        session.add(node)
        session.flush()
        for item in sp.action_items:
            action_item = TaskNode(
                plan_id=plan.id,
                issue_id=issue.id,
                parent_id=node.id,
                level=TaskLevel.action_item,
                title=item.title,
                owner_unit_id=units[item.owner_unit].id,
                start_date=item.start_date or today,
                due_date=item.due_date,
                deliverable=item.deliverable,
                # The sweep reads it again on its first red day (the interview falls due).
                next_action_on=next_red_step_on(
                    done=False,
                    due=item.due_date,
                    interview_requested_at=None,
                    escalated_at=None,
                    rules=ctx.policy.progress,
                ),
            )
            session.add(action_item)
            made.append(action_item)
    items = len(made)
    move(issue, Stage.executing)
    issue.stage_entered_at, issue.stage_due_at = now, None
    session.flush()
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="plan.filed",
        subject_type="issue",
        subject_id=issue.number,
        classification=issue.classification,
        notify="plan_filed",
        calendar_fallback=due.fallback_used,
        payload={
            "plan_id": plan.id,
            "round": issue.round,
            "goal": form.goal,
            "due": due.due,
            "on_time": plan.on_time,
            "tree": form.model_dump(mode="json"),
        },
        context={
            "issue": issue.number,
            "title": issue.title,
            "goal": form.goal,
            "items": items,
            "on_time": plan.on_time,
        },
    )
    result = StepResult(
        issue_number=issue.number,
        stage=issue.stage.value,
        classification=issue.classification,
        detail={
            "plan_id": plan.id,
            "action_items": items,
            # The ids the progress form asks for (an operator trial found them nowhere).
            "action_item_ids": _ids_and_titles(made),
            "item_ids": [item.id for item in made],  # shown for a secret issue too
            "on_time": plan.on_time,
            "due": due.due.isoformat(),
        },
    )
    remember(session, key, "plan", result.model_dump(), now, seen=seen)
    return result


def _ids_and_titles(items: list[TaskNode], title_chars: int = 40) -> str:
    """'17 改造窗口; 18 上线' for an operator who must name an item by its id."""
    return "; ".join(f"{item.id} {item.title[:title_chars]}" for item in items)
