"""Step 5, 效果评估: solved closes the issue (销号); otherwise it returns to coordination."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.context import Context
from taskforce.emergency.warnings import raise_warning, settle_warnings
from taskforce.errors import IllegalTransition
from taskforce.idempotency import fingerprint, previous_result, remember
from taskforce.loop.feedback import open_action_items
from taskforce.loop.forms import EvaluateForm, StepResult
from taskforce.loop.models import Evaluation, Outcome, Stage, TaskNode
from taskforce.loop.states import load_issue, move, require_step
from taskforce.registers.models import CaseLesson
from taskforce.reports.i18n import translator


def evaluate(
    session: Session,
    ctx: Context,
    issue_number: str,
    form: EvaluateForm,
    *,
    actor: str,
    key: str | None = None,
) -> StepResult:
    form = EvaluateForm.model_validate(form.model_dump())
    seen = fingerprint(issue_number, form)
    if (done := previous_result(session, key, seen=seen)) is not None:
        return StepResult.model_validate(done)
    issue = load_issue(session, issue_number)
    # Executing with items open is the usual early evaluation: say what is left, not only
    # the stage it needs (an operator trial read "'evaluate' needs stage evaluating").
    if issue.stage == Stage.executing and (left := open_action_items(session, issue.id)) > 0:
        raise IllegalTransition(
            f"{issue.number} has {left} open action items; evaluate when all are done",
            field="issue_number",
        )
    require_step(issue, "evaluate")
    now = ctx.now()
    session.add(
        Evaluation(
            issue_id=issue.id,
            round=issue.round,
            outcome=form.outcome,
            satisfaction=form.satisfaction,
            lessons=form.lessons,
            evaluated_at=now,
        )
    )
    if form.lessons.strip():
        session.add(
            CaseLesson(
                issue_id=issue.id,
                source=f"evaluation:{issue.number}:{issue.round}",
                title=issue.title,
                lesson=form.lessons,
                classification=issue.classification,
                created_at=now,
            )
        )
    payload = {
        "round": issue.round,
        "outcome": form.outcome.value,
        "satisfaction": form.satisfaction,
        "lessons": form.lessons,
    }
    context = {
        "issue": issue.number,
        "title": issue.title,
        "outcome": form.outcome.value,
        "satisfaction": form.satisfaction,
    }
    if form.outcome == Outcome.solved:
        move(issue, Stage.closed)
        issue.closed_at, issue.stage_entered_at, issue.stage_due_at = now, now, None
        events.record(
            session,
            ctx.policy,
            at=now,
            actor=actor,
            action="issue.closed",
            subject_type="issue",
            subject_id=issue.number,
            classification=issue.classification,
            notify="issue_closed",
            payload=payload,
            context=context,
        )
        # Warnings about the issue, or about items of any of its plans, have no cause left.
        settle_warnings(session, ctx, "issue", [issue.number], reason="issue closed", actor=actor)
        items = session.scalars(select(TaskNode.id).where(TaskNode.issue_id == issue.id)).all()
        settle_warnings(session, ctx, "task", list(items), reason="issue closed", actor=actor)
    else:
        move(issue, Stage.coordinating)
        issue.returns_count += 1
        issue.round += 1
        due = ctx.calendar.add_working_days(
            ctx.today(), ctx.policy.loop.coordination_deadline_working_days
        )
        issue.stage_entered_at, issue.stage_due_at = now, ctx.end_of(due.due)
        events.record(
            session,
            ctx.policy,
            at=now,
            actor=actor,
            action="issue.returned",
            subject_type="issue",
            subject_id=issue.number,
            classification=issue.classification,
            notify="issue_returned",
            calendar_fallback=due.fallback_used,
            payload={**payload, "returns": issue.returns_count},
            context=context,
        )
        limit = ctx.policy.loop.returns_before_warning
        if issue.returns_count >= limit:
            raise_warning(
                session,
                ctx,
                colour="yellow",
                source="loop",
                subject_type="issue",
                subject_id=issue.number,
                classification=issue.classification,
                title=translator(ctx.policy.locale)(
                    "warning_title.returns", issue=issue.number, count=issue.returns_count
                ),
                dedup_key=f"issue:{issue.number}:returns:{limit}",
                actor=actor,
            )
    session.flush()
    result = StepResult(
        issue_number=issue.number,
        stage=issue.stage.value,
        classification=issue.classification,
        detail={"outcome": form.outcome.value, "returns": issue.returns_count},
    )
    remember(session, key, "evaluate", result.model_dump(), now, seen=seen)
    return result
