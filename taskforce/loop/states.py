"""The loop's state machine (SPEC §2): which step may act on an issue in which stage."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskforce.errors import IllegalTransition, NotFound
from taskforce.loop.models import Issue, Stage

# stage -> the stages it may move to
TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    Stage.reported: frozenset({Stage.coordinating}),
    Stage.coordinating: frozenset({Stage.planning, Stage.coordinating}),  # a failed vote stays
    Stage.planning: frozenset({Stage.executing}),
    Stage.executing: frozenset({Stage.evaluating}),
    Stage.evaluating: frozenset({Stage.closed, Stage.coordinating}),  # unsolved loops back
    Stage.closed: frozenset(),
}

# step -> the stages it may start from
STEP_FROM: dict[str, frozenset[Stage]] = {
    "coordinate": frozenset({Stage.reported, Stage.coordinating}),
    "leadership_vote": frozenset({Stage.coordinating}),
    "plan": frozenset({Stage.planning}),
    "progress": frozenset({Stage.executing}),
    "evaluate": frozenset({Stage.evaluating}),
}

NEXT_STEP: dict[Stage, str | None] = {
    Stage.reported: "coordinate",
    Stage.coordinating: "coordinate",  # or leadership_vote when a major decision is pending
    Stage.planning: "plan",
    Stage.executing: "progress",
    Stage.evaluating: "evaluate",
    Stage.closed: None,
}


def load_issue(session: Session, number: str, *, lock: bool = True) -> Issue:
    query = select(Issue).where(Issue.number == number)
    if lock:
        query = query.with_for_update()
    issue = session.scalars(query).one_or_none()
    if issue is None:
        raise unknown_issue(session, number)
    return issue


def unknown_issue(session: Session, number: str, field: str = "issue_number") -> NotFound:
    """The error for an issue number that is not recorded, naming the latest one recorded
    (numbers run TF-<year>-<sequence>: a mistyped year or sequence shows at once)."""
    latest = session.scalar(select(Issue.number).order_by(Issue.id.desc()).limit(1))
    return NotFound(
        f"no issue {number!r}",
        field=field,
        allowed=f"an existing issue number, e.g. the latest, {latest}"
        if latest
        else "an existing issue number (none is recorded yet: report_issue files the first)",
    )


def require_step(issue: Issue, step: str) -> None:
    if issue.stage == Stage.closed:
        raise IllegalTransition(
            f"{issue.number} is closed; nothing can be done to a closed issue", field="issue_number"
        )
    allowed = STEP_FROM[step]
    if issue.stage not in allowed:
        raise IllegalTransition(
            f"{issue.number} is in stage {issue.stage.value!r}; {step!r} needs stage "
            f"{' or '.join(sorted(s.value for s in allowed))}",
            field="issue_number",
        )


def move(issue: Issue, to: Stage) -> Stage:
    """Change stage, refusing anything the table does not allow. Returns the old stage."""
    if to not in TRANSITIONS[issue.stage]:
        raise IllegalTransition(
            f"{issue.number}: {issue.stage.value} → {to.value} is not a step of the loop"
        )
    old = issue.stage
    issue.stage = to
    return old
